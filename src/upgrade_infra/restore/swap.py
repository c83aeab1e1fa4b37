"""The O(1) database swap shared by in-cluster strategies: renames only, idempotent.

For each database: terminate its sessions, rename the live database to its quarantine name
(``<db>__q_<op>``), rename the staged copy of the restore point to the live name. Re-running after
a crash at any point finishes the job: each rename is done only if it has not been done yet.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import psycopg

from upgrade_infra.core import sql
from upgrade_infra.core.errors import RestorePointError
from upgrade_infra.restore.names import quarantine_name

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment

OWNER_OF = "SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = %s"


def owner_of(admin: str, db: str) -> str | None:
    return sql.fetch_value(admin, OWNER_OF, [db])


def db_exists(admin: str, name: str) -> bool:
    return sql.exists(admin, sql.DATABASE_EXISTS, name)


def _exists(conn: psycopg.Connection, name: str) -> bool:
    return conn.execute(sql.DATABASE_EXISTS, [name]).fetchone() is not None


def _rename(conn: psycopg.Connection, old: str, new: str, attempts: int = 5) -> None:
    """Rename after terminating the sessions on ``old`` (a client may reconnect in between: retry)."""
    for i in range(attempts):
        conn.execute(sql.TERMINATE_BACKENDS, [old])
        try:
            conn.execute(sql.rename_database(old, new))
            return
        except psycopg.errors.ObjectInUse:
            if i == attempts - 1:
                raise
            time.sleep(0.05 * (i + 1))


def swap_in_cluster(env: Environment, staged: dict[str, str], op: str) -> dict[str, Any]:
    """One admin connection, two renames per database; every rename only if not done yet."""
    t0 = time.monotonic()
    quarantined: dict[str, str] = {}
    with sql.connect(env.conninfo()) as conn:
        for db, src in staged.items():
            q = quarantine_name(db, op)
            if not _exists(conn, q) and _exists(conn, db):
                _rename(conn, db, q)
            if _exists(conn, q):
                quarantined[db] = q
            if _exists(conn, src) and not _exists(conn, db):
                _rename(conn, src, db)
            if not _exists(conn, db):
                raise RestorePointError(f"cannot put {db} back in {env.name}: the staged copy {src} is gone",
                                        fix=f"run `upgrade-infra rollback {env.name}` again: staging is redone")
            conn.execute(sql.allow_connections(db, True))
    return {"quarantine": quarantined, "seconds": round(time.monotonic() - t0, 4)}
