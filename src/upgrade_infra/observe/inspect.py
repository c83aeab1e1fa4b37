"""Read-only views of an environment's data: tables, estimated rows and sizes per database."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from upgrade_infra.core import sql

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment

TABLE_SIZES = """
SELECT c.relname AS "table", c.reltuples::bigint AS est_rows,
       pg_total_relation_size(c.oid) AS bytes
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname = 'public' AND c.relname <> 'alembic_version'
ORDER BY bytes DESC
"""


def table_sizes(env: Environment) -> list[dict[str, Any]]:
    rows = []
    for db in env.manifest.postgres.databases:
        for r in sql.fetch(env.conninfo(db), TABLE_SIZES, read_only=True):
            rows.append({"database": db, "table": r["table"], "rows (est.)": max(int(r["est_rows"]), 0),
                         "MB": round(r["bytes"] / 1e6, 2)})
    return rows
