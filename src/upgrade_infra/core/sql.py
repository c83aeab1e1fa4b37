"""The one place that talks SQL.

Builders return ``psycopg.sql.Composed`` objects (pure; ``.as_string()`` for tests); the functions
below execute them. Connections made for reading another environment (e.g. production as a sync
source) are opened read-only at the session level, so a bug cannot write there.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from upgrade_infra.core.errors import PostgresError

Query = str | sql.Composable


@contextmanager
def connect(conninfo: str, *, read_only: bool = False, autocommit: bool = True,
            connect_timeout: int = 10) -> Iterator[psycopg.Connection]:
    opts = "-c default_transaction_read_only=on" if read_only else None
    try:
        conn = psycopg.connect(conninfo, autocommit=autocommit, connect_timeout=connect_timeout,
                               options=opts, row_factory=dict_row)
    except psycopg.OperationalError as e:
        raise PostgresError(f"cannot connect to PostgreSQL ({_safe(conninfo)}): {str(e).strip().splitlines()[0]}",
                            fix="is the environment up? try `upgrade-infra env status`") from None
    try:
        yield conn
    finally:
        conn.close()


def _safe(conninfo: str) -> str:
    return " ".join(p for p in conninfo.split() if not p.startswith("password="))


def execute(conninfo: str, *queries: Query, params: Sequence[Any] | None = None) -> None:
    with connect(conninfo) as c:
        for q in queries:
            c.execute(q, params)


def fetch(conninfo: str, query: Query, params: Sequence[Any] | None = None, *,
          read_only: bool = False) -> list[dict[str, Any]]:
    with connect(conninfo, read_only=read_only) as c:
        return c.execute(query, params).fetchall()


def fetch_value(conninfo: str, query: Query, params: Sequence[Any] | None = None, **kw) -> Any:
    rows = fetch(conninfo, query, params, **kw)
    return next(iter(rows[0].values())) if rows else None


def copy_out(conninfo: str, query: Query, params: Sequence[Any] | None = None, *, read_only: bool = True,
             batch_bytes: int = 1 << 20) -> Iterator[bytes]:
    """Stream ``COPY (query) TO STDOUT`` (text format, UTF-8) in batches of whole rows of about
    ``batch_bytes``: the server sends one message per row, joined here so a consumer works on large
    buffers and no row is ever split across two batches. Read-only session by default."""
    with connect(conninfo, read_only=read_only) as c, c.cursor() as cur:
        cur.execute("SET client_encoding TO 'UTF8'")
        with cur.copy(sql.SQL("COPY ({}) TO STDOUT").format(query if isinstance(query, sql.Composable)
                                                             else sql.SQL(query)), params) as cp:
            parts: list[Any] = []
            size = 0
            while data := cp.read():
                parts.append(data)
                size += len(data)
                if size >= batch_bytes:
                    yield b"".join(parts)
                    parts, size = [], 0
            if parts:
                yield b"".join(parts)


# -- pure builders ------------------------------------------------------------------------------
def ident(name: str) -> sql.Identifier:
    return sql.Identifier(name)


def create_role(name: str, password: str) -> sql.Composed:
    return sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(ident(name), sql.Literal(password))


def alter_role_password(name: str, password: str) -> sql.Composed:
    return sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident(name), sql.Literal(password))


def create_database(name: str, owner: str | None = None, template: str | None = None,
                    strategy: str | None = None) -> sql.Composed:
    q = sql.SQL("CREATE DATABASE {}").format(ident(name))
    if template:
        q += sql.SQL(" TEMPLATE {}").format(ident(template))
    if owner:
        q += sql.SQL(" OWNER {}").format(ident(owner))
    if strategy:
        q += sql.SQL(" STRATEGY {}").format(sql.SQL(strategy.upper()))
    return q


def rename_database(old: str, new: str) -> sql.Composed:
    return sql.SQL("ALTER DATABASE {} RENAME TO {}").format(ident(old), ident(new))


def drop_database(name: str) -> sql.Composed:
    return sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident(name))


def allow_connections(name: str, allow: bool) -> sql.Composed:
    return sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}").format(
        ident(name), sql.SQL("true" if allow else "false"))


TERMINATE_BACKENDS = sql.SQL(
    "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()")
LIST_DATABASES = sql.SQL("SELECT datname AS name, pg_database_size(datname) AS bytes FROM pg_database "
                         "WHERE NOT datistemplate ORDER BY 1")
ROLE_EXISTS = sql.SQL("SELECT 1 FROM pg_roles WHERE rolname = %s")
DATABASE_EXISTS = sql.SQL("SELECT 1 FROM pg_database WHERE datname = %s")


def database_sizes(conninfo: str) -> dict[str, int]:
    return {r["name"]: int(r["bytes"]) for r in fetch(conninfo, LIST_DATABASES)}


def exists(conninfo: str, query: Query, name: str) -> bool:
    return bool(fetch(conninfo, query, [name]))


def terminate_backends(conninfo: str, db: str) -> int:
    return int(fetch_value(conninfo, TERMINATE_BACKENDS, [db]) or 0)
