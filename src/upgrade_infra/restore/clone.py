"""``clone``: same-cluster copies, ``CREATE DATABASE <rp> TEMPLATE <db> STRATEGY FILE_COPY``.

A template must have no sessions: the capture closes the live databases for its duration
(``ALLOW_CONNECTIONS false`` + terminate the sessions, then clone, then open again), so services
keep running and only see refused connections for that window (their pools reconnect); data dirs
are copied in the same window. During an upgrade the services are stopped anyway. Restore-point databases
get ``ALLOW_CONNECTIONS false`` so nothing connects to them by accident. A spare clone of the
restore point (``<db>__rs_<id>``) is what a rollback renames into place, so the database step of a
rollback is two renames whatever the size, and the restore point itself stays intact and reusable;
the spare is made again after the rollback is verified (see docs/rollback/concepts.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upgrade_infra.core import sql
from upgrade_infra.core.errors import RestorePointError
from upgrade_infra.restore.dump import export_as_dumps
from upgrade_infra.restore.meta import RestorePoint
from upgrade_infra.restore.names import clone_name, spare_name, staged_name
from upgrade_infra.restore.registry import Strategy, register_strategy
from upgrade_infra.restore.swap import db_exists, owner_of

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment


def clone_db(admin: str, src: str, dst: str, owner: str | None) -> None:
    """A FILE_COPY clone of ``src`` named ``dst``, closed to connections (redone if left half-made)."""
    sql.terminate_backends(admin, src)
    sql.execute(admin, sql.drop_database(dst))
    sql.execute(admin, sql.create_database(dst, owner=owner, template=src, strategy="file_copy"),
                sql.allow_connections(dst, False))


def reopen(env: Environment) -> None:
    """Open the live databases again (after a capture window, or a crash inside one)."""
    admin = env.conninfo()
    for db in env.manifest.postgres.databases:
        if db_exists(admin, db):
            sql.execute(admin, sql.allow_connections(db, True))


@register_strategy("clone")
class CloneStrategy(Strategy):
    needs_stopped_services = False
    reference_kept = True
    portable = False

    def capture(self, env: Environment, rp: RestorePoint, rp_dir: Path) -> None:
        admin = env.conninfo()
        sizes = sql.database_sizes(admin)
        for db in env.manifest.postgres.databases:
            name = clone_name(db, rp.id)
            clone_db(admin, db, name, owner_of(admin, db))
            rp.databases[db] = {"clone": name, "spare": spare_name(db, rp.id), "bytes": sizes.get(db, 0)}
            rp.bytes += sizes.get(db, 0)

    @contextmanager
    def quiesced(self, env: Environment) -> Iterator[None]:
        admin = env.conninfo()
        try:
            for db in env.manifest.postgres.databases:
                sql.execute(admin, sql.allow_connections(db, False))
                sql.terminate_backends(admin, db)
            yield
        finally:
            reopen(env)

    def has_spare(self, env: Environment, rp: RestorePoint, rp_dir: Path) -> bool:
        admin = env.conninfo()
        return all(db_exists(admin, d["spare"]) for d in rp.databases.values())

    def make_spare(self, env: Environment, rp: RestorePoint, rp_dir: Path) -> bool:
        admin = env.conninfo()
        made = False
        for d in rp.databases.values():
            if not db_exists(admin, d["spare"]):
                clone_db(admin, d["clone"], d["spare"], owner_of(admin, d["clone"]))
                made = True
        return made

    def stage(self, env: Environment, rp: RestorePoint, rp_dir: Path, op: str) -> dict[str, Any]:
        admin = env.conninfo()
        out: dict[str, str] = {}
        path = "spare"
        for db, d in rp.databases.items():
            if db_exists(admin, d["spare"]):
                out[db] = d["spare"]
                continue
            path = "copy"  # no spare: copy the restore point (O(size)) so it stays intact
            staged = staged_name(db, op)
            if not db_exists(admin, staged):
                if not db_exists(admin, d["clone"]):
                    raise RestorePointError(f"restore point {rp.id}: database {d['clone']} is missing",
                                            fix="pick another restore point (`upgrade-infra snapshot list`)")
                clone_db(admin, d["clone"], staged, owner_of(admin, d["clone"]))
            out[db] = staged
        return {"databases": out, "path": path}

    @contextmanager
    def reference(self, env: Environment, rp: RestorePoint) -> Iterator[dict[str, str]]:
        admin = env.conninfo()
        names = {db: d["clone"] for db, d in rp.databases.items()}
        for n in names.values():
            sql.execute(admin, sql.allow_connections(n, True))
        try:
            yield {db: env.conninfo(n) for db, n in names.items()}
        finally:
            for n in names.values():
                sql.terminate_backends(admin, n)
                sql.execute(admin, sql.allow_connections(n, False))

    def verify(self, env: Environment, rp: RestorePoint, rp_dir: Path) -> list[str]:
        admin = env.conninfo()
        return [f"database {d['clone']} is missing" for d in rp.databases.values()
                if not db_exists(admin, d["clone"])]

    def drop(self, env: Environment, rp: RestorePoint, rp_dir: Path) -> None:
        admin = env.conninfo()
        for d in rp.databases.values():
            sql.execute(admin, sql.drop_database(d["clone"]), sql.drop_database(d["spare"]))

    def capture_downtime(self, window_s: float) -> float | None:
        return window_s  # the databases were closed for the capture window (services kept running)

    def drop_partial(self, env: Environment, rp_id: str) -> None:
        admin = env.conninfo()
        for db in env.manifest.postgres.databases:
            sql.execute(admin, sql.drop_database(clone_name(db, rp_id)), sql.drop_database(spare_name(db, rp_id)))

    def cluster_databases(self, rp: RestorePoint) -> list[str]:
        return [n for d in rp.databases.values() for k, n in d.items() if k in ("clone", "spare") and isinstance(n, str)]

    def export_steps(self, env: Environment, rp: RestorePoint, src: Path, out: Path, new: RestorePoint
                     ) -> list[tuple[str, Callable[[], Any]]]:
        return export_as_dumps(self, env, rp, src, out, new)
