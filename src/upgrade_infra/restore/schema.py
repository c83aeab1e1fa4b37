"""The shape of a schema's tables (columns, types, constraints, indexes, primary keys) and its diff.

Read from the catalogs on an open connection; used by :mod:`upgrade_infra.restore.fingerprint`.
Column positions are deliberately not part of the shape: dropping and re-adding a column with the
same definition yields the same shape (the content hash is what shows lost values).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql as psql

COLUMNS = psql.SQL(
    "SELECT c.relname AS table, a.attname AS column, format_type(a.atttypid, a.atttypmod) AS type, "
    "a.attnotnull AS not_null, pg_get_expr(d.adbin, d.adrelid) AS default "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
    "LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum "
    "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY 1, a.attnum")
CONSTRAINTS = psql.SQL(
    "SELECT c.relname AS table, k.conname AS name, k.contype AS type, pg_get_constraintdef(k.oid) AS definition, "
    "k.convalidated AS validated FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s ORDER BY 1, 2")
INDEXES = psql.SQL(
    "SELECT tablename AS table, indexname AS name, indexdef AS definition FROM pg_indexes "
    "WHERE schemaname = %s ORDER BY 1, 2")
PRIMARY_KEYS = psql.SQL(
    "SELECT c.relname AS table, array_agg(a.attname::text ORDER BY k.ord) AS columns "
    "FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
    "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
    "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum "
    "WHERE i.indisprimary AND n.nspname = %s GROUP BY 1")
CONSTRAINT_TYPES = {"c": "check", "f": "foreign key", "p": "primary key", "u": "unique", "x": "exclusion",
                    "t": "trigger", "n": "not null"}


def read_schema(conn: psycopg.Connection, schema: str, tables: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {t: {"columns": {}, "constraints": {}, "indexes": {}, "primary_key": []}
                                      for t in tables}
    for r in conn.execute(COLUMNS, [schema]).fetchall():
        if r["table"] in out:
            out[r["table"]]["columns"][r["column"]] = {"type": r["type"], "not_null": r["not_null"],
                                                       "default": r["default"]}
    for r in conn.execute(CONSTRAINTS, [schema]).fetchall():
        if r["table"] in out:
            out[r["table"]]["constraints"][r["name"]] = {
                "type": CONSTRAINT_TYPES.get(r["type"], r["type"]), "definition": r["definition"],
                "validated": r["validated"]}
    for r in conn.execute(INDEXES, [schema]).fetchall():
        if r["table"] in out:
            out[r["table"]]["indexes"][r["name"]] = r["definition"]
    for r in conn.execute(PRIMARY_KEYS, [schema]).fetchall():
        if r["table"] in out:
            out[r["table"]]["primary_key"] = list(r["columns"])
    return out


def diff_table(db: str, table: str, a: dict[str, Any], b: dict[str, Any], make: Callable[..., Any]) -> list:
    """Schema differences of one table; ``make(db, table, what, detail, before, after)`` builds each."""
    out = []
    ca, cb = a.get("columns", {}), b.get("columns", {})
    for col in sorted(set(ca) | set(cb)):
        x, y = ca.get(col), cb.get(col)
        if x == y:
            continue
        if x is None:
            detail = f"column {col} added ({_col_text(y)})"
        elif y is None:
            detail = f"column {col} dropped"
        else:
            changes = [f"{k} {x[k]!r} -> {y[k]!r}" for k in ("type", "not_null", "default") if x[k] != y[k]]
            detail = f"column {col} changed: {', '.join(changes)}"
        out.append(make(db, table, "column", detail, x, y))
    for kind, label in (("constraints", "constraint"), ("indexes", "index")):
        ka, kb = a.get(kind, {}), b.get(kind, {})
        for name in sorted(set(ka) | set(kb)):
            x, y = ka.get(name), kb.get(name)
            if x == y:
                continue
            verb = "added" if x is None else "dropped" if y is None else "changed"
            out.append(make(db, table, label, f"{label} {name} {verb}", x, y))
    if a.get("primary_key") != b.get("primary_key"):
        out.append(make(db, table, "primary_key", "primary key changed", a.get("primary_key"), b.get("primary_key")))
    return out


def _col_text(c: dict[str, Any]) -> str:
    return c["type"] + (" NOT NULL" if c["not_null"] else "") + (f" DEFAULT {c['default']}" if c["default"] else "")
