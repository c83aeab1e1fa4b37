"""Which rows lost or changed values, for tables whose content changed when it must not have.

Two phases, because before and after never exist at the same time in one database: ``capture``
reads ``(primary key, hash of each suspect column)`` from the migrated data; once the restore point
has brought the before state back, ``resolve`` reads the same and names, per column, how many rows
changed and which keys. Tables above ``MAX_ROWS`` rows are only named by column.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg import sql as psql

from upgrade_infra.core import sql

if TYPE_CHECKING:
    from upgrade_infra.restore.fingerprint import DataFingerprint

MAX_ROWS = 200_000
SAMPLE = 5


def row_hash_query(schema: str, table: str, key: list[str], columns: list[str]) -> psql.Composed:
    """``SELECT <key as text> AS k, hash(col0) AS h0, …`` (text casts: any type, NULL-safe)."""
    k = psql.SQL(" || ',' || ").join(
        psql.SQL("{} || '=' || coalesce({}::text, 'NULL')").format(psql.Literal(c), psql.Identifier(c)) for c in key)
    hs = [psql.SQL("hash_record_extended(ROW({}::text), 0) AS {}").format(psql.Identifier(c), psql.Identifier(f"h{i}"))
          for i, c in enumerate(columns)]
    what = psql.SQL(", ").join([psql.SQL("{} AS k").format(k), *hs])  # no column besides the key: k alone
    return psql.SQL("SELECT {} FROM {}.{}").format(what, psql.Identifier(schema), psql.Identifier(table))


def _read(conninfo: str, schema: str, table: str, key: list[str], columns: list[str]) -> dict[str, list[int]]:
    rows = sql.fetch(conninfo, row_hash_query(schema, table, key, columns), read_only=True)
    return {r["k"]: [r[f"h{i}"] for i in range(len(columns))] for r in rows}


def capture(conninfos: dict[str, str], suspects: list[dict[str, Any]], before: DataFingerprint, after: DataFingerprint,
            schema: str = "public") -> list[dict[str, Any]]:
    """Read the migrated state of each suspect table (call before the restore point is restored)."""
    out = []
    for s in suspects:
        db, t = s["db"], s["table"]
        shape_b, shape_a = before.schema.get(db, {}).get(t, {}), after.schema.get(db, {}).get(t, {})
        key = shape_b.get("primary_key") or []
        common = sorted(set(shape_b.get("columns", {})) & set(shape_a.get("columns", {})) - set(key))
        cols = [c for c in (s.get("columns") or common) if c in common] or common
        dropped = sorted(set(shape_b.get("columns", {})) - set(shape_a.get("columns", {})))
        entry = {"db": db, "table": t, "key": key, "columns": cols, "dropped_columns": dropped,
                 "rows": after.rows(db, t), "after": None, "note": None}
        if not key or key != shape_a.get("primary_key"):
            entry["note"] = "no stable primary key: rows cannot be named"
        elif (after.rows(db, t) or 0) > MAX_ROWS:
            entry["note"] = f"more than {MAX_ROWS} rows: only columns are named"
        else:
            entry["after"] = _read(conninfos[db], schema, t, key, cols)
        out.append(entry)
    return out


def resolve(conninfos: dict[str, str], captured: list[dict[str, Any]], schema: str = "public",
            added: dict[tuple[str, str], int] | None = None) -> list[dict[str, Any]]:
    """Compare with the before state (now restored): one entry per column whose values changed.
    ``added`` (optional) receives, per table, how many keys exist only in the migrated state."""
    out: list[dict[str, Any]] = []
    for e in captured:
        db, t = e["db"], e["table"]
        for col in e["dropped_columns"]:
            out.append({"db": db, "table": t, "column": col, "rows_changed": e["rows"], "sample_keys": ["(all)"],
                        "how": "column dropped"})
        if e["after"] is None:
            for col in e["columns"]:
                out.append({"db": db, "table": t, "column": col, "rows_changed": "?", "sample_keys": [],
                            "how": e["note"]})
            continue
        before = _read(conninfos[db], schema, t, e["key"], e["columns"])
        after = e["after"]
        for i, col in enumerate(e["columns"]):
            changed = sorted((k for k in before.keys() & after.keys() if before[k][i] != after[k][i]), key=_natural)
            if changed:
                out.append({"db": db, "table": t, "column": col, "rows_changed": len(changed),
                            "sample_keys": changed[:SAMPLE], "how": "values changed"})
        if added is not None:
            added[(db, t)] = len(after.keys() - before.keys())
        gone = sorted(before.keys() - after.keys(), key=_natural)
        if gone:
            out.append({"db": db, "table": t, "column": "(row)", "rows_changed": len(gone),
                        "sample_keys": gone[:SAMPLE], "how": "rows deleted"})
    return out


def _natural(k: str) -> tuple:
    import re

    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", k))
