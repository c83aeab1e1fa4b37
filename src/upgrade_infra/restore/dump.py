"""``dump``: ``pg_dump -Fd -j`` of every database, online (services keep running) and portable.

A rollback from a dump restores it (``pg_restore -j``) into ``<db>__r_<op>`` (O(size), the naive
path the benchmark compares against), then swaps by rename like ``clone``. Dumps are the format
``snapshot export`` writes and ``env restore`` reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from upgrade_infra.backends import pgtools
from upgrade_infra.core import sql
from upgrade_infra.restore.meta import RestorePoint, checksum_tree, private_files, verify_files
from upgrade_infra.restore.names import staged_name
from upgrade_infra.restore.registry import Strategy, register_strategy
from upgrade_infra.restore.swap import owner_of

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment

JOBS = pgtools.JOBS


def dump_db(env: Environment, conninfo: str, out_dir: Path) -> None:
    """``pg_dump`` of the database ``conninfo`` names (one of ``env``'s, or a side copy's) into ``out_dir``."""
    env.database.run_tool("pg_dump", pgtools.dump_args(conninfo, out_dir), timeout=7200)


def restore_db(env: Environment, dump_dir: Path, name: str, owner: str | None) -> None:
    """Create ``name`` (dropping a half-restored one) and pg_restore ``dump_dir`` into it."""
    admin = env.conninfo()
    sql.execute(admin, sql.drop_database(name), sql.create_database(name, owner=owner))
    pgtools.restore(env.database, name, dump_dir)


@register_strategy("dump")
class DumpStrategy(Strategy):
    needs_stopped_services = False
    reference_kept = False
    portable = True

    def capture(self, env: Environment, rp: RestorePoint, rp_dir: Path) -> None:
        (rp_dir / "dump").mkdir(mode=0o700, exist_ok=True)
        for db in env.manifest.postgres.databases:
            rel = f"dump/{db}"
            dump_db(env, env.database.tool_conninfo(db), rp_dir / rel)
            private_files(rp_dir / rel)
            files = checksum_tree(rp_dir, rel)
            rp.files.update(files)
            size = sum((rp_dir / f).stat().st_size for f in files)
            rp.databases[db] = {"dump": rel, "owner": owner_of(env.conninfo(), db) or db, "bytes": size}
            rp.bytes += size

    def stage(self, env: Environment, rp: RestorePoint, rp_dir: Path, op: str) -> dict[str, Any]:
        out = {}
        for db, d in rp.databases.items():
            staged = staged_name(db, op)
            restore_db(env, rp_dir / d["dump"], staged, d.get("owner") or db)
            sql.execute(env.conninfo(), sql.allow_connections(staged, False))
            out[db] = staged
        return {"databases": out, "path": "pg_restore"}

    def verify(self, env: Environment, rp: RestorePoint, rp_dir: Path) -> list[str]:
        return verify_files(rp_dir, rp.files, "dump/")
