"""``cow``: a copy-on-write restore point, O(1) in the data size, where the filesystem has reflinks.

Capture: a ``CHECKPOINT`` (so the shutdown checkpoint has almost nothing to write), a fast stop of
the cluster, a reflink copy (``cp -a --reflink=always``) of its data dir and of the services' data
dirs, then the cluster starts again. Services keep running and only see refused connections for
that window (their pools reconnect), as with ``clone``; during an upgrade they are stopped anyway.
The copy shares every data block with the live cluster: it costs metadata only until either side
writes. Restore = the spare reflink copy renamed into place (like ``fs``), then start.

Reflink support is detected, not guessed (:func:`problem` copies a probe file in the state dir with
``--reflink=always``); the data dirs must sit on the state dir's filesystem. Elsewhere the strategy
refuses with a one-line error naming the fallback (``clone``); ``auto`` (:func:`choose`) picks ``cow``
where it works and ``clone`` otherwise, and says why.

Integrity: file checksums of a multi-GB data dir would make the capture O(size), so the restore
point records each file's size (``pgdata.files.json``, itself checksummed) and ``verify`` compares
names and sizes (O(files)).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upgrade_infra.backends.interface import PhysicalDataDir, ServiceData
from upgrade_infra.core import faults, fsutil, sql
from upgrade_infra.core.errors import BadInput
from upgrade_infra.restore.fs import REL, FsStrategy, pgdata
from upgrade_infra.restore.meta import RestorePoint, rp_dir, verify_files
from upgrade_infra.restore.registry import register_strategy

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment

LISTING = "pgdata.files.json"
FALLBACK = "clone"
AUTO = "auto"
#: fault-injection points inside the strategy (UPGRADE_INFRA_FAULT=cow_window / cow_swap)
FAULT_WINDOW, FAULT_SWAP = "cow_window", "cow_swap"


# -- detection -------------------------------------------------------------------------------------
def _dirs(env: Environment) -> list[Path]:
    """Live directories a cow restore point copies and swaps (their parents must share the state dir's fs)."""
    out = [pgdata(env).path]
    data = env.capability(ServiceData)
    out += [data.path(n) for n, s in env.manifest.services.items() if s.data_dir]
    return out


def _existing(p: Path) -> Path:
    while not p.exists():
        p = p.parent
    return p


def problem(env: Environment) -> str | None:
    """Why a cow restore point of ``env`` cannot be taken here; None when it can."""
    for cap in CowStrategy.requires:
        if not env.has(cap):
            return f"the {env.backend_name!r} backend of {env.name!r} offers no {cap.title}"
    root = env.state.root
    root.mkdir(parents=True, exist_ok=True)
    why = fsutil.reflink_problem(root)
    if why:
        return why
    dev = os.stat(root).st_dev
    for d in _dirs(env):
        if os.stat(_existing(d.parent)).st_dev != dev:
            return f"{d} is on another filesystem than the state dir {root} (reflinks do not cross filesystems)"
    return None


def require(env: Environment) -> None:
    why = problem(env)
    if why:
        raise BadInput(f"the cow restore-point strategy needs reflinks: {why}",
                       fix=f"use --strategy {FALLBACK} (the fallback `auto` picks here), or put the state dir on "
                           "XFS formatted with reflink=1 or on btrfs", strategy="cow", fallback=FALLBACK)


def choose(env: Environment, requested: str) -> tuple[str, str]:
    """(strategy, why): ``auto`` becomes ``cow`` where reflinks work, else ``clone``; others stay."""
    if requested != AUTO:
        return requested, f"{requested}: named by --strategy or policies.snapshot_strategy"
    why = problem(env)
    if why is None:
        return "cow", (f"auto: the state dir's {fsutil.fs_type(env.state.root)} filesystem makes reflink copies "
                       "(probe copy succeeded)")
    return FALLBACK, f"auto: {why}; using {FALLBACK}"


# -- listing (O(files) integrity) ------------------------------------------------------------------
def listing(base: Path) -> dict[str, int]:
    out = {}
    for dirpath, _, files in os.walk(base):
        for f in files:
            p = Path(dirpath) / f
            if not p.is_symlink():
                out[str(p.relative_to(base))] = p.stat().st_size
    return out


def listing_problems(base: Path, expected: dict[str, int]) -> list[str]:
    problems = []
    for rel, size in sorted(expected.items()):
        p = base / rel
        if not p.is_file():
            problems.append(f"missing {REL}/{rel}")
        elif p.stat().st_size != size:
            problems.append(f"size mismatch: {REL}/{rel}")
    return problems


@register_strategy("cow")
class CowStrategy(FsStrategy):
    requires = frozenset({PhysicalDataDir, ServiceData})
    needs_stopped_services = False
    #: the restore point stays readable (a throwaway reflink copy on a side port), so the quarantine
    #: report, O(rows), runs after the services are back instead of inside the rollback's budget
    reference_kept = True
    portable = False  # exported as dumps (`snapshot export` converts through `reference`)
    pause_s: float | None = None  # the last capture's database pause (stop to started again)

    def estimate_bytes(self, env: Environment) -> int:
        return 64 << 20  # shared blocks: only metadata is written

    @contextmanager
    def quiesced(self, env: Environment) -> Iterator[None]:
        require(env)
        pg = pgdata(env)
        if pg.running():  # flush now, while writes go on, so the pause has little left to write
            sql.execute(env.conninfo(), "CHECKPOINT")
        fsutil.sync_fs(pg.path)
        self.pause_s = None
        t0 = time.monotonic()
        pg.stop()
        try:
            yield
        finally:
            pg.start()
            self.pause_s = round(time.monotonic() - t0, 3)  # the databases were unreachable this long

    def capture(self, env: Environment, rp: RestorePoint, rp_dir_: Path) -> None:
        dst = rp_dir_ / REL
        pg = pgdata(env)
        fsutil.reflink_tree(pg.path, dst)
        faults.maybe_fail("snapshot", FAULT_WINDOW)  # tests: kill -9 while the cluster is down
        pg.clean_copy(dst)
        files = listing(dst)
        (rp_dir_ / LISTING).write_text(json.dumps(files, sort_keys=True))
        os.chmod(rp_dir_ / LISTING, 0o600)
        rp.files[LISTING] = fsutil.sha256_file(rp_dir_ / LISTING)
        rp.bytes += sum(files.values())
        rp.databases = {db: {"pgdata": REL, "reflink": True} for db in env.manifest.postgres.databases}

    def make_spare(self, env: Environment, rp: RestorePoint, rp_dir_: Path) -> bool:
        return self._reflink_once(rp_dir_ / REL, rp_dir_ / "spare" / REL)

    @staticmethod
    def _reflink_once(src: Path, dst: Path) -> bool:
        if dst.exists():
            return False
        tmp = dst.with_name(dst.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        fsutil.reflink_tree(src, tmp)
        os.replace(tmp, dst)
        return True

    def stage(self, env: Environment, rp: RestorePoint, rp_dir_: Path, op: str) -> dict[str, Any]:
        pg = pgdata(env)
        if pg.running():  # services are stopped: the swap's shutdown checkpoint is then tiny
            sql.execute(env.conninfo(), "CHECKPOINT")
        if self.has_spare(env, rp, rp_dir_):
            return {"pgdata": str(rp_dir_ / "spare" / REL), "path": "spare"}
        staged = pg.path.with_name(f"data.__r_{op.split('-', 1)[-1]}")
        self._reflink_once(rp_dir_ / REL, staged)
        return {"pgdata": str(staged), "path": "reflink"}

    def between_renames(self) -> None:
        faults.maybe_fail("rollback", FAULT_SWAP)  # tests: kill -9 with no live data dir

    @contextmanager
    def reference(self, env: Environment, rp: RestorePoint) -> Iterator[dict[str, str]]:
        """The restore point's databases, read from a throwaway reflink copy on a side port."""
        pg = pgdata(env)
        tmp = pg.path.with_name(f"data.__ref_{secrets.token_hex(3)}")
        fsutil.reflink_tree(rp_dir(env.state, rp.id) / REL, tmp)
        try:
            with pg.side_server(tmp) as conninfo:
                yield {db: conninfo(db) for db in rp.databases}
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def verify(self, env: Environment, rp: RestorePoint, rp_dir_: Path) -> list[str]:
        bad = verify_files(rp_dir_, rp.files, LISTING)
        if bad:
            return bad
        return listing_problems(rp_dir_ / REL, json.loads((rp_dir_ / LISTING).read_text()))
