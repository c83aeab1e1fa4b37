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
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psycopg import sql as q

from upgrade_infra.core import bookkeeping, sql
from upgrade_infra.core.state import StateDir, atomic_write_json, read_json
from upgrade_infra.stack.manifest import check_name

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment

BUCKETS = 1024
# migration tools' own version tables: the upgrade always changes them; reported, not counted
BOOKKEEPING = bookkeeping.TABLES
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
def qdir(state: StateDir, op: str, env: Environment | None = None) -> Path:
    """``<state>/quarantine/<op>``. With ``env`` on a backend with a physical data dir: a directory
    its server can read (a quarantined data dir is started on a side port for the report)."""
    from upgrade_infra.backends.interface import PhysicalDataDir

    rel = Path("quarantine") / check_name("operation", op)
    if env is not None and env.has(PhysicalDataDir):
        return env.capability(PhysicalDataDir).reachable_dir(rel)
    return state.server_dir(rel, None)


def record(env: Environment, op: str, rp_id: str, **fields: Any) -> dict[str, Any]:
    path = qdir(env.state, op, env) / "meta.json"
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
    if meta.get("volumes"):
        from upgrade_infra.restore.volumes import engine_volumes

        cap = engine_volumes(env)
        for name in (meta["volumes"] or {}).values() if cap is not None else ():
            cap.remove(name)
    if (meta.get("server") or {}).get("volume"):  # a major upgrade's server, rolled back (pg-volume)
        from upgrade_infra.restore.pgvolume import drop_quarantined

        drop_quarantined(env, meta["server"])
    env.state.remove_server_dir(Path("quarantine") / check_name("operation", op))  # when it lives in the state's base
    env.state.remove(env.state.path("quarantine", check_name("operation", op)), ignore_errors=True)


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
    base = env.database.tool_command("psql", [env.database.tool_conninfo(qdb), "-v", "ON_ERROR_STOP=1"])
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
    out_dir = qdir(env.state, op, env)
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


# -- sequences: quarantined ids are never handed out again -----------------------------------------
SEQUENCES = ("SELECT schemaname AS schema, sequencename AS name, last_value FROM pg_sequences "
             "WHERE last_value IS NOT NULL")


def setval_query(schema: str, name: str) -> q.Composed:
    """Move a sequence forward to at least ``%s`` (never backwards: idempotent, safe to re-run)."""
    seq = q.Literal(q.Identifier(schema, name).as_string(None))
    return q.SQL("SELECT setval({s}::regclass, greatest(%s::bigint, (SELECT last_value FROM {i})), true) AS v"
                 ).format(s=seq, i=q.Identifier(schema, name))


def advance_sequences(qconns: dict[str, str], live: dict[str, str]) -> list[dict[str, Any]]:
    """Every sequence of the live databases moved past the value its twin reached in the quarantine,
    so rows written after the rollback never take the ids of quarantined rows (which can then be
    merged back with their own ids)."""
    out = []
    for db, qc in qconns.items():
        reached = {(r["schema"], r["name"]): int(r["last_value"]) for r in sql.fetch(qc, SEQUENCES, read_only=True)}
        now = {(r["schema"], r["name"]): int(r["last_value"]) for r in sql.fetch(live[db], SEQUENCES)}
        with sql.connect(live[db]) as c:
            for (schema, name), value in sorted(reached.items()):
                exists = c.execute("SELECT to_regclass(%s) IS NOT NULL AS e",
                                   [q.Identifier(schema, name).as_string(None)]).fetchone()["e"]
                if not exists or now.get((schema, name), 0) >= value:
                    continue
                c.execute(setval_query(schema, name), [value])
                out.append({"database": db, "sequence": f"{schema}.{name}", "from": now.get((schema, name)),
                            "to": value})
    return out


# -- show / export / merge ------------------------------------------------------------------------
def find(state: StateDir, env: str, op: str | None = None) -> dict[str, Any]:
    """One quarantine of ``env`` (default: the newest)."""
    from upgrade_infra.core.errors import UnknownName

    all_ = list_all(state, env)
    if op is None and all_:
        return all_[-1]
    for m in all_:
        if m["op"] == op:
            return m
    raise UnknownName(f"no quarantine {op or ''} of environment {env!r}".replace("  ", " "),
                      fix=f"see `upgrade-infra quarantine show {env}`: "
                          + (", ".join(m["op"] for m in all_) or "there is none"))


def show(env: Environment, op: str | None = None) -> dict[str, Any]:
    """What a quarantine holds: the stored report (rows per table written after the upgrade)."""
    if op is None and not list_all(env.state, env.name):
        return {"environment": env.name, "quarantines": []}
    meta = find(env.state, env.name, op)
    rep = meta.get("report") or {}
    return {"environment": env.name, "op": meta["op"], "restore_point": meta.get("restore_point"),
            "created_at": meta.get("created_at"), "databases": meta.get("databases"),
            "merged": meta.get("merged"),
            "rows_new_total": rep.get("rows_new_total"),
            "tables": [t for t in rep.get("tables", []) if t.get("rows_new") or t.get("rows_gone")],
            "quarantines": [m["op"] for m in list_all(env.state, env.name)]}


def _quarantined(env: Environment, meta: dict[str, Any]):
    from upgrade_infra.restore import points as snapshots

    st = snapshots.STRATEGIES.get(meta.get("strategy") or "", None) or _by_shape(bool(meta.get("pgdata")))
    return st.quarantined(env, {"databases": meta.get("databases") or {}, "pgdata": meta.get("pgdata")})


def _by_shape(pgdata: bool):
    """A strategy that reads a quarantine of this shape (a quarantine recorded before its strategy was):
    a whole cluster's data dir, or databases in the live cluster."""
    from upgrade_infra.restore import points as snapshots

    return next(st for _, st in sorted(snapshots.STRATEGIES.items()) if st.swaps_cluster == pgdata)


def _columns(conninfo: str, schema: str, table: str, read_only: bool) -> list[str]:
    return list(_column_types(conninfo, schema, table, read_only))


def _column_types(conninfo: str, schema: str, table: str, read_only: bool) -> dict[str, str]:
    """Insertable columns (not generated) -> their SQL type, in table order."""
    return {r["c"]: r["t"] for r in sql.fetch(
        conninfo, "SELECT attname::text AS c, format_type(atttypid, atttypmod) AS t FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
        [q.Identifier(schema, table).as_string(None)], read_only=read_only)}


def rows_query(schema: str, table: str, pk: list[str], columns: list[str], *, as_text: bool = False) -> q.Composed:
    """The quarantined rows whose key is in ``%s`` (text keys, as :func:`_key_expr` renders them);
    ``as_text``: every value in its text form (lossless for every type, inserted back with a cast)."""
    cast = q.SQL("::text") if as_text else q.SQL("")
    return q.SQL("SELECT {cols} FROM {t} t WHERE {k} = ANY(%s) ORDER BY {k}").format(
        cols=q.SQL(", ").join(q.SQL("t.{}{} AS {}").format(q.Identifier(c), cast, q.Identifier(c)) for c in columns),
        t=q.Identifier(schema, table), k=_key_expr(pk))


def insert_query(schema: str, table: str, columns: dict[str, str]) -> q.Composed:
    """Insert one quarantined row (text values cast to the live column types, ``columns``: name -> type)
    with its own ids; a row whose key came back meanwhile is skipped (ON CONFLICT DO NOTHING)."""
    return q.SQL("INSERT INTO {t} ({cols}) OVERRIDING SYSTEM VALUE VALUES ({vals}) ON CONFLICT DO NOTHING").format(
        t=q.Identifier(schema, table), cols=q.SQL(", ").join(q.Identifier(c) for c in columns),
        vals=q.SQL(", ").join(q.SQL("{}::{}").format(q.Placeholder(), q.SQL(t)) for t in columns.values()))


def _reported_keys(state: StateDir, op: str, db: str, table: str) -> set[str] | None:
    """Keys the rollback's report found written after the restore point (its ``.keys`` file), if kept."""
    path = state.root / "quarantine" / op / f"{db}.{table}.keys"
    if not path.is_file():
        return None
    return {line.replace("\\n", "\n").replace("\\\\", "\\") for line in path.read_text().splitlines()}


def _plan(qconns: dict[str, str], live: dict[str, str], state: StateDir | None = None,
          op: str | None = None) -> list[dict[str, Any]]:
    """Per table: the keys only in the quarantine (merge candidates), those the rollback found new but
    production has taken since (``taken``), or why the table cannot be merged."""
    out = []
    for db, qc in qconns.items():
        lt = _tables(live[db])
        for (schema, table), pk in sorted(_tables(qc).items()):
            name = table if schema == "public" else f"{schema}.{table}"
            row: dict[str, Any] = {"database": db, "table": name, "schema": schema, "table_name": table, "pk": pk}
            if table in BOOKKEEPING:
                continue
            if (schema, table) not in lt:
                n = int(sql.fetch_value(qc, count_query(schema, table), read_only=True))
                if n:
                    out.append({**row, "keys": [], "rows": n, "reason": "table does not exist in the live database"})
                continue
            if not pk or lt[(schema, table)] != pk:
                out.append({**row, "keys": [], "rows": None, "reason": "no primary key to compare rows by: "
                            "export it and compare by hand"})
                continue
            new, _ = new_keys(qc, live[db], schema, table, pk)
            reported = _reported_keys(state, op, db, name) if state and op else None
            rest = (reported or set()) - new - _keys_absent_from(qc, schema, table, pk, reported)
            taken = sorted(rest - _same_rows(qc, live[db], schema, table, pk, rest))  # same row: merged already
            if taken:
                out.append({**row, "keys": taken, "rows": len(taken), "taken": True,
                            "reason": "its key is taken in production now"})
            if not new:
                continue
            qcols = _columns(qc, schema, table, True)
            lcols = _column_types(live[db], schema, table, False)
            missing = [c for c in qcols if c not in lcols]
            row.update(keys=sorted(new), rows=len(new), columns=[c for c in qcols if c in lcols],
                       types={c: lcols[c] for c in qcols if c in lcols})
            if missing:
                row["reason"] = f"columns {', '.join(missing)} do not exist in the live table (schema changed)"
            out.append(row)
    return out


def _keys_absent_from(conninfo: str, schema: str, table: str, pk: list[str], keys: set[str] | None) -> set[str]:
    """Of ``keys``, those no longer in the quarantined table (nothing to merge for them)."""
    if not keys:
        return set()
    query = q.SQL("SELECT {k} AS k FROM {t} t WHERE {k} = ANY(%s)").format(k=_key_expr(pk),
                                                                           t=q.Identifier(schema, table))
    return keys - {r["k"] for r in sql.fetch(conninfo, query, [sorted(keys)], read_only=True)}


def _same_rows(qconn: str, lconn: str, schema: str, table: str, pk: list[str], keys: set[str]) -> set[str]:
    """Of ``keys``, those whose whole row is the same in the quarantine and in production."""
    if not keys:
        return set()
    query = q.SQL("SELECT {k} AS k, md5(t::text) AS h FROM {t} t WHERE {k} = ANY(%s)").format(
        k=_key_expr(pk), t=q.Identifier(schema, table))
    qh = {r["k"]: r["h"] for r in sql.fetch(qconn, query, [sorted(keys)], read_only=True)}
    return {r["k"] for r in sql.fetch(lconn, query, [sorted(keys)], read_only=True) if qh.get(r["k"]) == r["h"]}


def export(env: Environment, op: str | None, dest: Path) -> dict[str, Any]:
    """Write the quarantined rows that production does not have, per table, as CSV (0600) under
    ``dest/<op>/``: what an operator reads before (or instead of) merging."""
    import csv

    meta = find(env.state, env.name, op)
    out = Path(dest).resolve() / meta["op"]
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    files = []
    live = {db: env.conninfo(db) for db in (meta.get("databases") or {})}
    with _quarantined(env, meta) as qconns:
        for t in _plan(qconns, live, env.state, meta["op"]):
            if t.get("columns") is None and t["rows"] is None:
                cols = _columns(qconns[t["database"]], t["schema"], t["table_name"], True)
                query: Any = q.SQL("SELECT * FROM {}").format(q.Identifier(t["schema"], t["table_name"]))
                params: list[Any] | None = None
            else:
                cols = t.get("columns") or _columns(qconns[t["database"]], t["schema"], t["table_name"], True)
                query, params = (rows_query(t["schema"], t["table_name"], t["pk"], cols), [t["keys"]]) if t["keys"] \
                    else (q.SQL("SELECT * FROM {}").format(q.Identifier(t["schema"], t["table_name"])), None)
            rows = sql.fetch(qconns[t["database"]], query, params, read_only=True)
            path = out / f"{t['database']}.{t['table']}{'.taken' if t.get('taken') else ''}.csv"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(list(rows[0]) if rows else cols)
                for r in rows:
                    w.writerow([v for v in r.values()])
            files.append({"database": t["database"], "table": t["table"], "rows": len(rows), "path": str(path),
                          "note": t.get("reason")})
    return {"environment": env.name, "op": meta["op"], "path": str(out), "files": files}


def merge(env: Environment, op: str | None = None, *, dry_run: bool = False) -> dict[str, Any]:
    """Insert the quarantined rows production does not have back into production, with their own ids
    (the rollback moved the sequences past them); rows that conflict (their key came back, a
    constraint refuses them, the schema changed) stay in the quarantine and are reported.

    Rows are inserted one by one in savepoints, parents before children: a row refused for a missing
    parent is retried after the others, until a pass merges nothing more."""
    from upgrade_infra.core.lock import guard

    meta = find(env.state, env.name, op)
    live = {db: env.conninfo(db) for db in (meta.get("databases") or {})}
    conflicts: list[dict[str, Any]] = []
    with guard(env.state, env.name, f"quarantine merge {env.name} {meta['op']}",
               shared=dry_run), _quarantined(env, meta) as qconns:
        plan = _plan(qconns, live, env.state, meta["op"])
        pending: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for t in plan:
            if t.get("reason"):
                conflicts.append({"database": t["database"], "table": t["table"], "rows": t["rows"],
                                  "reason": t["reason"], "keys": t["keys"][:20]})
                continue
            rows = sql.fetch(qconns[t["database"]], rows_query(t["schema"], t["table_name"], t["pk"], t["columns"],
                                                               as_text=True), [t["keys"]], read_only=True)
            pending += [(t, r) for r in rows]
        counts: dict[tuple[str, str], int] = {}
        last_error: dict[int, str] = {}
        while pending and not dry_run:
            retry = []
            for t, r in pending:
                with sql.connect(live[t["database"]], autocommit=False) as c:
                    try:
                        n = c.execute(insert_query(t["schema"], t["table_name"], t["types"]),
                                      list(r.values())).rowcount
                        c.commit()
                    except Exception as e:  # noqa: BLE001 - a refused row is reported, not fatal
                        c.rollback()
                        last_error[id(r)] = str(e).splitlines()[0]
                        retry.append((t, r))
                        continue
                key = (t["database"], t["table"])
                if n:
                    counts[key] = counts.get(key, 0) + 1
                else:
                    conflicts.append({"database": t["database"], "table": t["table"], "rows": 1,
                                      "reason": "its key is taken in production now", "keys": [_row_key(t, r)]})
            if len(retry) == len(pending):
                break
            pending = retry
        if dry_run:
            counts = {(t["database"], t["table"]): 0 for t, _ in pending}
        else:
            for t, r in pending:
                conflicts.append({"database": t["database"], "table": t["table"], "rows": 1,
                                  "reason": last_error.get(id(r), "refused"), "keys": [_row_key(t, r)]})
    merged = [{"database": db, "table": tb, "rows": n} for (db, tb), n in sorted(counts.items()) if n or dry_run]
    would = [{"database": t["database"], "table": t["table"], "rows": len(t["keys"])} for t in plan
             if not t.get("reason")] if dry_run else None
    res = {"environment": env.name, "op": meta["op"], "dry_run": dry_run, "merged": merged,
           "merged_total": sum(m["rows"] for m in merged), "would_merge": would, "not_merged": conflicts,
           "not_merged_total": sum(c["rows"] or 0 for c in conflicts)}
    if not dry_run:
        record(env, meta["op"], meta.get("restore_point", ""),
               merged={"at": time.time(), "rows": res["merged_total"], "not_merged": res["not_merged_total"]})
    return res


def _row_key(t: dict[str, Any], r: dict[str, Any]) -> str:
    vals = [str(r.get(c)) for c in t["pk"]]
    return vals[0] if len(vals) == 1 else "(" + ",".join(vals) + ")"
