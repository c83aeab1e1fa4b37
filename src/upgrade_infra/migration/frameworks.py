"""Migration frameworks' own bookkeeping tables: recognised by name, their growth is the list of
migrations a release applied (reported, never an integrity failure).

The list itself is :mod:`upgrade_infra.core.bookkeeping` (the rollback's quarantine report uses the
same one); here one builder and the reading, through :mod:`upgrade_infra.core.sql`.
"""

from __future__ import annotations

from psycopg import sql as psql

from upgrade_infra.core import sql
from upgrade_infra.core.bookkeeping import FRAMEWORKS

MAX_ENTRIES = 500


def framework_of(table: str) -> str | None:
    return FRAMEWORKS[table][0] if table in FRAMEWORKS else None


def entries_query(schema: str, table: str, columns: list[str]) -> psql.Composed:
    """One text label per row: the framework's naming columns joined by spaces (the whole row as
    text when none of them exists), ordered, capped at MAX_ENTRIES."""
    wanted = [c for c in FRAMEWORKS.get(table, ("",))[1] if c in columns]
    label = (psql.SQL("concat_ws(' ', {})").format(psql.SQL(", ").join(
        psql.SQL("{}::text").format(psql.Identifier(c)) for c in wanted)) if wanted else psql.SQL("t::text"))
    return psql.SQL("SELECT {} AS label FROM {}.{} t ORDER BY 1 LIMIT {}").format(
        label, psql.Identifier(schema), psql.Identifier(table), psql.Literal(MAX_ENTRIES))


def entries(conninfo: str, table: str, columns: list[str], schema: str = "public") -> list[str]:
    rows = sql.fetch(conninfo, entries_query(schema, table, columns), read_only=True)
    return [r["label"] for r in rows]


def bookkeeping_in(shapes: dict[str, dict[str, dict]]) -> dict[str, list[str]]:
    """db -> bookkeeping tables present, from a fingerprint's ``schema``."""
    return {db: sorted(t for t in tables if t in FRAMEWORKS) for db, tables in shapes.items()}


def applied(before: dict[str, dict[str, list[str]]], after: dict[str, dict[str, list[str]]]) -> list[dict]:
    """Per bookkeeping table: rows before/after and the entries the migration added."""
    out = []
    for db in sorted(after):
        for table, rows in sorted(after[db].items()):
            old = before.get(db, {}).get(table, [])
            gone = set(old)
            new = [r for r in rows if r not in gone]
            out.append({"db": db, "table": table, "framework": framework_of(table), "rows_before": len(old),
                        "rows_after": len(rows), "new": new})
    return out
