"""``fs``: a copy of the stopped cluster's data dir (``cp -a --reflink=auto``: near-instant on
XFS/btrfs, a plain copy on ext4). Portable to a machine with the same PostgreSQL major.

A rollback swaps the whole data dir: stop PostgreSQL, rename the live data dir into the quarantine,
rename the restore point's spare copy (or a fresh copy) into place, start PostgreSQL. The
quarantined cluster is read for the quarantine report by starting it on a free side port.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upgrade_infra.backends.interface import PhysicalDataDir
from upgrade_infra.core import fsutil
from upgrade_infra.restore.meta import SPARE, RestorePoint, checksum_tree, verify_files
from upgrade_infra.restore.names import short
from upgrade_infra.restore.registry import Strategy, register_strategy

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment

REL = "pgdata"


def pgdata(env: Environment) -> PhysicalDataDir:
    """The environment's physical data directory (the capability ``fs`` and ``cow`` require)."""
    return env.capability(PhysicalDataDir)


@register_strategy("fs")
class FsStrategy(Strategy):
    requires = frozenset({PhysicalDataDir})
    alternative = "clone"
    needs_stopped_services = True
    reference_kept = False
    portable = True

    def estimate_bytes(self, env: Environment) -> int:
        return fsutil.tree_bytes(pgdata(env).path)

    def capture(self, env: Environment, rp: RestorePoint, rp_dir: Path) -> None:
        pg = pgdata(env)
        pg.stop()
        try:
            fsutil.copy_tree(pg.path, rp_dir / REL)
        finally:
            pg.start()
        rp.files.update(checksum_tree(rp_dir, REL))
        rp.bytes += fsutil.tree_bytes(rp_dir / REL)
        rp.databases = {db: {"pgdata": REL} for db in env.manifest.postgres.databases}

    def has_spare(self, env: Environment, rp: RestorePoint, rp_dir: Path) -> bool:
        return (rp_dir / SPARE / REL).exists()

    def make_spare(self, env: Environment, rp: RestorePoint, rp_dir: Path) -> bool:
        dst = rp_dir / SPARE / REL
        if dst.exists():
            return False
        tmp = dst.with_name(REL + ".partial")
        env.state.remove(tmp, ignore_errors=True)
        fsutil.copy_tree(rp_dir / REL, tmp)
        os.replace(tmp, dst)
        return True

    def stage(self, env: Environment, rp: RestorePoint, rp_dir: Path, op: str) -> dict[str, Any]:
        if self.has_spare(env, rp, rp_dir):
            return {"pgdata": str(rp_dir / SPARE / REL), "path": "spare"}
        staged = pgdata(env).path.with_name(f"data.__r_{short(op)}")
        if not staged.exists():
            tmp = staged.with_name(staged.name + ".partial")
            env.state.remove(tmp, ignore_errors=True)
            fsutil.copy_tree(rp_dir / REL, tmp)
            os.replace(tmp, staged)
        return {"pgdata": str(staged), "path": "copy"}

    def swap(self, env: Environment, staged: dict[str, Any], op: str, qdir: Path) -> dict[str, Any]:
        """Stop, live data dir into the quarantine, staged copy into place, start (renames; idempotent)."""
        import time

        t0 = time.monotonic()
        pg = pgdata(env)
        live, src, q = pg.path, Path(staged["pgdata"]), qdir / REL
        pg.stop()
        q.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if live.exists() and not q.exists():
            os.rename(live, q)
        self.between_renames()
        if src.exists() and not live.exists():
            os.rename(src, live)
        pg.start()
        return {"quarantine": {db: "(cluster)" for db in env.manifest.postgres.databases},
                "pgdata": str(q), "seconds": round(time.monotonic() - t0, 4)}

    def between_renames(self) -> None:
        """Called with no live data dir in place (a subclass's fault point)."""

    @contextmanager
    def quarantined(self, env: Environment, quarantine: dict[str, Any]) -> Iterator[dict[str, str]]:
        with pgdata(env).side_server(Path(quarantine["pgdata"])) as conninfo:
            yield {db: conninfo(db) for db in quarantine["databases"]}

    def verify(self, env: Environment, rp: RestorePoint, rp_dir: Path) -> list[str]:
        return verify_files(rp_dir, rp.files, REL + "/")
