"""What is known about staging environments: their ``staging.json`` and the rows of ``stage list``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from psycopg import sql as psql

from upgrade_infra.core import fsutil, sql
from upgrade_infra.core.state import atomic_write_json, read_json

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment
    from upgrade_infra.operations.session import Session

META = "staging.json"


def load_meta(env: Environment) -> dict[str, Any]:
    return read_json(env.dir / META, {}) or {}


def save_meta(env: Environment, data: dict[str, Any]) -> None:
    atomic_write_json(env.dir / META, {**load_meta(env), **data})


def staging_envs(s: Session) -> list[Environment]:
    out = []
    for n in s.state.env_names():
        rec = s.state.load_record(n)
        if rec is not None and rec.kind == "staging":
            out.append(s.env(n))
    return out


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def describe(env: Environment, *, probe: bool = True, now: float | None = None) -> dict[str, Any]:
    """One row of ``stage list``: age, TTL left, versions, size on disk, health, last sync."""
    now = now or time.time()
    rec, meta = env.record, load_meta(env)
    st = env.status(probe=probe)
    left = rec.created_at + rec.ttl_s - now if rec.ttl_s is not None else None
    return {
        "name": env.name, "source": rec.source, "status": meta.get("status", "?"),
        "age_s": round(now - rec.created_at, 1), "age": _age(now - rec.created_at),
        "ttl_left_s": round(left, 1) if left is not None else None,
        "ttl_left": "expired" if rec.expired(now) else _age(left),
        "expired": rec.expired(now), "versions": dict(rec.versions), "strategy": meta.get("strategy"),
        "masked": meta.get("mask"), "synced_at": rec.synced_at,
        "last_sync_age_s": round(now - rec.synced_at, 1) if rec.synced_at else None,
        "bytes": fsutil.tree_bytes(env.dir), "databases": st.databases, "postgres_port": env.database.endpoint().port,
        "healthy": st.healthy, "services": {x.name: x.detail for x in st.services},
        "restore_point": meta.get("restore_point"),
    }


def list_envs(s: Session, *, probe: bool = True) -> list[dict[str, Any]]:
    return [describe(e, probe=probe) for e in staging_envs(s)]


# -- evidence for runbooks and reports (read-only on both sides) -------------------------------------
TABLES = psql.SQL("SELECT table_schema AS schema, table_name AS table FROM information_schema.tables "
                  "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') "
                  "ORDER BY 1, 2")


PRIMARY_KEY = psql.SQL("SELECT a.attname AS col FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                       "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary "
                       "ORDER BY array_position(i.indkey, a.attnum)")


def _count(schema: str, table: str) -> psql.Composed:
    return psql.SQL("SELECT count(*) AS n FROM {}").format(psql.Identifier(schema, table))


def parity(source: Environment, copy: Environment) -> list[dict[str, Any]]:
    """Exact row counts of every table in both environments (read-only sessions)."""
    rows = []
    for db in source.manifest.postgres.databases:
        for t in sql.fetch(source.conninfo(db), TABLES, read_only=True):
            q = _count(t["schema"], t["table"])
            a = sql.fetch_value(source.conninfo(db), q, read_only=True)
            try:
                b = sql.fetch_value(copy.conninfo(db), q, read_only=True)
            except Exception:  # noqa: BLE001 - a table the copy does not have (other release)
                b = None
            name = t["table"] if t["schema"] == "public" else f"{t['schema']}.{t['table']}"
            rows.append({"database": db, "table": name, source.name: a, copy.name: b, "match": a == b})
    return rows


def masked_samples(source: Environment, copy: Environment, limit: int = 5) -> list[dict[str, Any]]:
    """The first rows (by primary key) of every masked column: production's value only as an md5 prefix,
    staging's in clear, and whether it changed."""
    from upgrade_infra.staging.masking_sql import qualified

    out = []
    for col in (load_meta(copy).get("leak_check") or {}).get("columns", []):
        db, table, column = col["column"].split(".", 2)
        pk = [r["col"] for r in sql.fetch(source.conninfo(db), PRIMARY_KEY, [table], read_only=True)]
        order = psql.SQL(", ").join(map(psql.Identifier, pk)) if pk else psql.SQL("ctid")
        q = psql.SQL("SELECT left(md5({c}::text), 10) AS h, {c}::text AS v FROM {t} "
                     "WHERE {c} IS NOT NULL ORDER BY {o} LIMIT %s").format(c=psql.Identifier(column),
                                                                           t=qualified(table), o=order)
        prod = sql.fetch(source.conninfo(db), q, [limit], read_only=True)
        mine = sql.fetch(copy.conninfo(db), q, [limit], read_only=True)
        for p, m in zip(prod, mine, strict=False):
            out.append({"column": col["column"], "rule": col["rule"], "production (md5)": p["h"] + "…",
                        "staging": m["v"][:60], "staging (md5)": m["h"] + "…", "changed": p["h"] != m["h"]})
    return out
