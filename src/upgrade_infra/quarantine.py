"""The quarantine: what a rollback set aside instead of deleting, and what is in it.

A rollback renames the failed state's databases to ``<db>__q_<op>`` (and moves its data dirs, or
for ``fs`` its whole cluster data dir, to ``<state>/quarantine/<op>/``). :func:`report` then
lists, per table, the rows present in the quarantine but not in the restore point (rows written
after the upgrade, which the rollback took out of service), by primary key where there is one and
by count otherwise, with a ``psql`` command to inspect them and one to export them to CSV.

Comparing by key is cheap when few rows differ: each side is first summarised per hash bucket of
the key (count and sum of key hashes, one scan), and only keys of buckets that differ are fetched.
"""

from __future__ import annotations

import os
import shlex
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psycopg import sql as q

from . import sql
from .state import StateDir, atomic_write_json, read_json

if TYPE_CHECKING:
    from .environments import Environment

BUCKETS = 1024
# migration tools' own version tables: the upgrade always changes them; reported, not counted
BOOKKEEPING = frozenset({"alembic_version", "schema_migrations", "flyway_schema_history", "knex_migrations",
                         "__diesel_schema_migrations", "SequelizeMeta", "migrations", "django_migrations"})
TABLES = """
SELECT n.nspname AS schema, c.relname AS table,
  ARRAY(SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid
        AND a.attnum = ANY(i.indkey) WHERE i.indrelid = c.oid AND i.indisprimary
        ORDER BY array_position(i.indkey::int2[], a.attnum)) AS pk
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' AND NOT c.relispartition
ORDER BY 1, 2
"""


# -- where quarantines live ---------------------------------------------------------------------
def qdir(state: StateDir, op: str) -> Path:
    from .postgres import server_user

    # the server user must reach a quarantined cluster data dir (fs): 0711 dirs, or the state's base
    return state.server_dir(Path("quarantine") / op, server_user())


def record(env: Environment, op: str, rp_id: str, **fields: Any) -> dict[str, Any]:
    path = qdir(env.state, op) / "meta.json"
    meta = read_json(path, {}) or {"op": op, "env": env.name, "restore_point": rp_id, "created_at": time.time()}
    meta.update(fields)
    atomic_write_json(path, meta)
    return meta


def load(state: StateDir, op: str) -> dict[str, Any] | None:
    return read_json(state.root / "quarantine" / op / "meta.json")


def list_all(state: StateDir, env: str | None = None) -> list[dict[str, Any]]:
    base = state.root / "quarantine"
    out = [m for p in sorted(base.iterdir()) if (m := read_json(p / "meta.json"))] if base.exists() else []
    return sorted([m for m in out if env is None or m.get("env") == env], key=lambda m: m["created_at"])


def prune_plan(env: Environment, days: float, now: float | None = None) -> list[dict[str, Any]]:
    """Quarantines older than ``days``; a younger one is never deleted."""
    now = now or time.time()
    return [m for m in list_all(env.state, env.name) if now - m["created_at"] > days * 86400]


def delete(env: Environment, op: str) -> None:
    meta = load(env.state, op) or {}
    admin = env.conninfo()
    for name in (meta.get("databases") or {}).values():
        if "__q_" in name:
            sql.execute(admin, sql.drop_database(name))
    env.state.remove_server_dir(Path("quarantine") / op)  # when it lives in the state's base
    shutil.rmtree(env.state.root / "quarantine" / op, ignore_errors=True)


# -- the report ----------------------------------------------------------------------------------
def _key_expr(pk: list[str]) -> q.Composable:
    if len(pk) == 1:
        return q.SQL("t.{}::text").format(q.Identifier(pk[0]))
    return q.SQL("ROW({})::text").format(q.SQL(", ").join(q.SQL("t.{}").format(q.Identifier(c)) for c in pk))


def bucket_query(schema: str, table: str, pk: list[str]) -> q.Composed:
    k = _key_expr(pk)
    return q.SQL("SELECT (hashtextextended({k}, 0) & {m}) AS b, count(*) AS n, sum(hashtextextended({k}, 0)) AS s "
                 "FROM {t} t GROUP BY 1").format(k=k, m=q.Literal(BUCKETS - 1), t=q.Identifier(schema, table))


def keys_query(schema: str, table: str, pk: list[str]) -> q.Composed:
    k = _key_expr(pk)
    return q.SQL("SELECT {k} AS k FROM {t} t WHERE (hashtextextended({k}, 0) & {m}) = ANY(%s)").format(
        k=k, m=q.Literal(BUCKETS - 1), t=q.Identifier(schema, table))


def count_query(schema: str, table: str) -> q.Composed:
    return q.SQL("SELECT count(*) AS n FROM {}").format(q.Identifier(schema, table))


def select_new(schema: str, table: str, pk: list[str] | None) -> str:
    """The SQL text an operator runs against the quarantine (keys loaded into temp table ``k``)."""
    t = q.Identifier(schema, table).as_string(None)
    if not pk:
        return f"SELECT * FROM {t}"
    return q.SQL("SELECT t.* FROM {t} t JOIN k ON {k} = k.k").format(t=q.Identifier(schema, table),
                                                                      k=_key_expr(pk)).as_string(None)


def _tables(conninfo: str) -> dict[tuple[str, str], list[str]]:
    return {(r["schema"], r["table"]): list(r["pk"] or []) for r in sql.fetch(conninfo, TABLES, read_only=True)}


def new_keys(qconn: str, rconn: str, schema: str, table: str, pk: list[str]) -> tuple[set[str], set[str]]:
    """(keys only in the quarantine, keys only in the reference)."""
    def buckets(c: str) -> dict[int, tuple[int, int]]:
        return {r["b"]: (r["n"], r["s"]) for r in sql.fetch(c, bucket_query(schema, table, pk), read_only=True)}

    bq, br = buckets(qconn), buckets(rconn)
    diff = sorted(b for b in set(bq) | set(br) if bq.get(b) != br.get(b))
    if not diff:
        return set(), set()
    kq = {r["k"] for r in sql.fetch(qconn, keys_query(schema, table, pk), [diff], read_only=True)}
    kr = {r["k"] for r in sql.fetch(rconn, keys_query(schema, table, pk), [diff], read_only=True)}
    return kq - kr, kr - kq


def compare(qconns: dict[str, str], rconns: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    for db, qc in qconns.items():
        rc = rconns[db]
        qt, rt = _tables(qc), _tables(rc)
        for (schema, table), pk in sorted(qt.items()):
            row: dict[str, Any] = {"database": db, "table": table if schema == "public" else f"{schema}.{table}"}
            if (schema, table) not in rt:
                n = sql.fetch_value(qc, count_query(schema, table), read_only=True)
                row.update(rows_new=int(n), rows_gone=0, by="table created by the upgrade", keys=None)
            elif pk and rt[(schema, table)] == pk:
                new, gone = new_keys(qc, rc, schema, table, pk)
                row.update(rows_new=len(new), rows_gone=len(gone), by=f"primary key ({', '.join(pk)})",
                           keys=sorted(new))
            else:
                nq = int(sql.fetch_value(qc, count_query(schema, table), read_only=True))
                nr = int(sql.fetch_value(rc, count_query(schema, table), read_only=True))
                row.update(rows_new=max(0, nq - nr), rows_gone=max(0, nr - nq), by="row count (no primary key)",
                           keys=None)
            row["pk"], row["schema"], row["table_name"] = pk, schema, table
            rows.append(row)
        for (schema, table) in sorted(set(rt) - set(qt)):
            n = sql.fetch_value(rc, count_query(schema, table), read_only=True)
            rows.append({"database": db, "table": table, "rows_new": 0, "rows_gone": int(n),
                         "by": "table dropped by the upgrade", "keys": None, "pk": [], "schema": schema,
                         "table_name": table})
    return rows


def commands(env: Environment, row: dict[str, Any], qdb: str, out_dir: Path) -> dict[str, str]:
    """psql commands to look at / export the rows of ``row`` in quarantined database ``qdb``."""
    psql = env.cluster.install.bin("psql")
    conn = f"host={env.cluster.socket_dir} port={env.cluster.port} user={env.cluster.superuser} dbname={qdb}"
    base = [psql, conn, "-v", "ON_ERROR_STOP=1"]
    query = select_new(row["schema"], row["table_name"], row["pk"] if row["keys"] is not None else None)
    pre: list[str] = []
    if row["keys"] is not None:
        keyfile = out_dir / f"{row['database']}.{row['table']}.keys"
        keyfile.write_text("".join(k.replace("\\", "\\\\").replace("\n", "\\n") + "\n" for k in row["keys"]))
        os.chmod(keyfile, 0o600)
        pre = ["-c", "CREATE TEMP TABLE k (k text)", "-c", f"\\copy k FROM '{keyfile}'"]
    csv = out_dir / f"{row['database']}.{row['table']}.csv"
    return {"inspect": shlex.join([*base, *pre, "-c", query]),
            "export": shlex.join([*base, *pre, "-c", f"\\copy ({query}) TO '{csv}' CSV HEADER"])}


def report(env: Environment, op: str, qconns: dict[str, str], rconns: dict[str, str],
           in_cluster: bool = True) -> dict[str, Any]:
    """Compare quarantine and restore point; store and return the per-table report."""
    t0 = time.monotonic()
    meta = load(env.state, op) or {}
    out_dir = qdir(env.state, op)
    rows = compare(qconns, rconns)
    for r in rows:
        r["bookkeeping"] = r["table_name"] in BOOKKEEPING
        if r["rows_new"] and in_cluster and not r["bookkeeping"]:
            r.update(commands(env, r, (meta.get("databases") or {}).get(r["database"], ""), out_dir))
        r["sample_keys"] = (r.pop("keys") or [])[:5]
        for k in ("pk", "schema", "table_name"):
            r.pop(k, None)
    total = sum(r["rows_new"] for r in rows if not r["bookkeeping"])
    rep = {"rows_new_total": total, "tables": rows, "seconds": round(time.monotonic() - t0, 3),
           "where": meta.get("databases") if in_cluster else meta.get("pgdata")}
    record(env, op, meta.get("restore_point", ""), report=rep)
    return rep
