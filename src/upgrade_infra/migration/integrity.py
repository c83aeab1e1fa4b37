"""Integrity after a migration: row counts, untouched content, constraints, user invariants.

* every table the manifest does not declare (``migration.expected_changes``) keeps its row count,
  its content hash and its shape; a changed hash is named down to the column (per-column hashes).
  A declaration ``table.column`` allows that column to be added or changed while every other
  column of the table is still checked. New tables are reported (with their rows), not failed;
  migration frameworks' bookkeeping tables (:mod:`.frameworks`) are reported as the migrations
  applied; rows added to an undeclared table are reported, not failed, once :mod:`.rowdiff` has shown
  that they are only inserts (every existing row unchanged);
* constraints are re-checked by queries on the migrated data: CHECK (``NOT expr``), NOT NULL,
  foreign keys (anti-join, MATCH SIMPLE), NOT VALID constraints and invalid indexes are reported.
  Only tables whose content or constraints changed are scanned (``full=True``: all tables);
* ``migration.invariants``: SQL that must return zero rows.
Which rows lost values is found by :mod:`.rowdiff` once the before state is back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from psycopg import sql as psql

from upgrade_infra.core import sql
from upgrade_infra.migration.frameworks import FRAMEWORKS, framework_of
from upgrade_infra.restore.fingerprint import DataFingerprint, changed_columns

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment
    from upgrade_infra.stack.manifest import InvariantSpec

BOOKKEEPING = tuple(FRAMEWORKS)  # migration frameworks' own tables always change
SAMPLE = 5
CHECKS = psql.SQL(
    "SELECT c.relname AS table, k.conname AS name, pg_get_expr(k.conbin, k.conrelid) AS expr, "
    "k.convalidated AS validated FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE k.contype = 'c' AND n.nspname = %s ORDER BY 1, 2")
_KEYCOLS = ("(SELECT array_agg(a.attname::text ORDER BY u.ord) FROM unnest(k.{key}) WITH ORDINALITY AS u(attnum, ord) "
            "JOIN pg_attribute a ON a.attrelid = k.{rel} AND a.attnum = u.attnum)")
FOREIGN_KEYS = psql.SQL(
    "SELECT c.relname AS table, k.conname AS name, p.relname AS parent, k.convalidated AS validated, "
    + _KEYCOLS.format(key="conkey", rel="conrelid") + " AS cols, "
    + _KEYCOLS.format(key="confkey", rel="confrelid") + " AS pcols "
    "FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE k.contype = 'f' AND n.nspname = %s ORDER BY 1, 2")
INVALID_INDEXES = psql.SQL(
    "SELECT c.relname AS table, x.relname AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
    "JOIN pg_class x ON x.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE NOT i.indisvalid AND n.nspname = %s")


# -- pure builders ------------------------------------------------------------------------------
def table_check_query(schema: str, table: str, checks: list[tuple[str, str]], not_null: list[str]) -> psql.Composed:
    """One scan counting all rows (``rows``), rows violating each CHECK expression (``k<i>``) and each
    NOT NULL (``n<i>``)."""
    parts = [psql.SQL("count(*) AS rows")]
    parts += [psql.SQL("count(*) FILTER (WHERE NOT ({})) AS {}").format(psql.SQL(expr), psql.Identifier(f"k{i}"))
             for i, (_, expr) in enumerate(checks)]
    parts += [psql.SQL("count(*) FILTER (WHERE {} IS NULL) AS {}").format(psql.Identifier(c), psql.Identifier(f"n{i}"))
              for i, c in enumerate(not_null)]
    return psql.SQL("SELECT {} FROM {}.{}").format(psql.SQL(", ").join(parts), psql.Identifier(schema),
                                                 psql.Identifier(table))


def orphan_query(schema: str, table: str, cols: list[str], parent: str, pcols: list[str],
                 sample: bool = False) -> psql.Composed:
    """Rows of ``table`` whose foreign key has no parent row (rows with a NULL key part are exempt)."""
    c = [psql.SQL("c.{}").format(psql.Identifier(x)) for x in cols]
    notnull = psql.SQL(" AND ").join(psql.SQL("{} IS NOT NULL").format(x) for x in c)
    match = psql.SQL(" AND ").join(psql.SQL("p.{} = {}").format(psql.Identifier(p), x) for p, x in zip(pcols, c, strict=True))
    what = psql.SQL(", ").join(c) if sample else psql.SQL("count(*) AS n")
    q = psql.SQL("SELECT {} FROM {}.{} c WHERE {} AND NOT EXISTS (SELECT 1 FROM {}.{} p WHERE {})").format(
        what, psql.Identifier(schema), psql.Identifier(table), notnull, psql.Identifier(schema),
        psql.Identifier(parent), match)
    return q + psql.SQL(" LIMIT {}").format(psql.Literal(SAMPLE)) if sample else q


# -- results --------------------------------------------------------------------------------------
@dataclass
class IntegrityResult:
    tables: list[dict[str, Any]] = field(default_factory=list)
    constraints: list[dict[str, Any]] = field(default_factory=list)
    invariants: list[dict[str, Any]] = field(default_factory=list)
    lost_values: list[dict[str, Any]] = field(default_factory=list)  # filled by rowdiff
    suspects: list[dict[str, Any]] = field(default_factory=list)  # tables to drill into, with after-state rows

    @property
    def failures(self) -> list[str]:
        out = [f"{t['db']}.{t['table']}: {t['problem']}" for t in self.tables if not t["ok"]]
        out += [f"{c['db']}.{c['table']}: {c['constraint']} ({c['type']}): {c['problem']}"
                for c in self.constraints if not c["ok"]]
        out += [f"invariant {i['name']} ({i['database']}): {i['problem']}" for i in self.invariants if not i["ok"]]
        out += [f"{v['db']}.{v['table']}.{v['column']}: values changed in {v['rows_changed']} row(s), e.g. "
                f"{', '.join(v['sample_keys'])}" for v in self.lost_values]
        return out

    @property
    def passed(self) -> bool:
        return not self.failures

    def inserted(self) -> list[dict[str, Any]]:
        """Rows the migration added, per table: new tables, and growth of existing ones."""
        out = []
        for t in self.tables:
            b, a = t["rows_before"], t["rows_after"]
            if t["content"] == "new" and a:
                out.append({"db": t["db"], "table": t["table"], "rows": a, "table_new": True})
            elif b is not None and a is not None and a > b and not t.get("bookkeeping"):
                out.append({"db": t["db"], "table": t["table"], "rows": a - b, "table_new": False})
        return out

    def accept_pure_inserts(self, added: dict[tuple[str, str], int]) -> None:
        """Tables that only grew (rowdiff found new keys, no changed or deleted row): reported, not failed."""
        lost = {(v["db"], v["table"]) for v in self.lost_values}
        for t in self.tables:
            key = (t["db"], t["table"])
            grew = (t["rows_before"] or 0) < (t["rows_after"] or 0)
            if not t["ok"] and grew and key not in lost and added.get(key) == t["rows_after"] - t["rows_before"]:
                t.update(ok=True, problem=None, note=f"{added[key]} row(s) inserted; every existing row unchanged")

    def undeclared_changes(self) -> dict[str, list[str]]:
        """db -> the ``expected_changes`` entries that would declare the failed tables (``table.column``
        where the change is confined to known columns, else the whole table)."""
        out: dict[str, list[str]] = {}
        for t in self.tables:
            if t["ok"]:
                continue
            own = t["declared"] if isinstance(t["declared"], list) else []
            cols = [c for c in t["columns_changed"] if c not in own]
            same_rows = t["rows_before"] == t["rows_after"]
            entries = [f"{t['table']}.{c}" for c in cols] if cols and same_rows and t["content"] == "changed" \
                else [t["table"]]
            out.setdefault(t["db"], []).extend(entries)
        return {db: sorted(set(v)) for db, v in out.items()}

    def other_failures(self) -> list[str]:
        """Failures that declaring changes would not fix: constraints, invariants, lost values, dropped tables."""
        out = [f for f in self.failures if not any(f.startswith(f"{t['db']}.{t['table']}: ") and not t["ok"]
                                                   for t in self.tables)]
        out += [f"{t['db']}.{t['table']}: {t['problem']}" for t in self.tables
                if not t["ok"] and t["content"] == "dropped"]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "failures": self.failures, "tables": self.tables,
                "constraints": self.constraints, "invariants": self.invariants, "lost_values": self.lost_values,
                "inserted": self.inserted()}


def expected_tables(manifest, to_versions: dict[str, str], extra: dict | None = None) -> dict[str, set[str]]:
    """db -> what the manifest declares may change for the versions the databases' owners go to:
    table names and ``table.column`` entries (``extra``: more ``expected_changes``, e.g. an accepted file)."""
    out: dict[str, set[str]] = {}
    sources = [manifest.migration.expected_changes, *included_changes(manifest), extra or {}]
    for db, spec in manifest.postgres.databases.items():
        ver = to_versions.get(spec.owner)
        declared: set[str] = set()
        for src in sources:
            declared |= set((src.get(ver) or {}).get(db) or []) if ver else set()
        out[db] = declared
    return out


def whole_tables(expected: dict[str, set[str]]) -> dict[str, set[str]]:
    """Only the entries that declare whole tables."""
    return {db: {t for t in names if "." not in t} for db, names in expected.items()}


def declared_columns(expected: dict[str, set[str]]) -> dict[str, dict[str, set[str]]]:
    """db -> table -> columns declared one by one (``table.column``)."""
    out: dict[str, dict[str, set[str]]] = {}
    for db, names in expected.items():
        for n in names:
            if "." in n:
                t, _, c = n.partition(".")
                out.setdefault(db, {}).setdefault(t, set()).add(c)
    return out


def included_changes(manifest) -> list[dict]:
    """The ``expected_changes`` of the files ``migration.expected_changes_files`` names (relative to the
    manifest), e.g. written by ``migrate test --accept``."""
    return [load_expected(manifest.stack_dir / f) for f in manifest.migration.expected_changes_files]


def load_expected(path) -> dict:
    """``expected_changes`` from a YAML file (``{expected_changes: {version: {db: [entries]}}}``)."""
    from pathlib import Path

    from upgrade_infra.core.errors import BadInput
    from upgrade_infra.stack.yamlsource import load_yaml

    p = Path(path)
    if not p.is_file():
        raise BadInput(f"expected-changes file {p} not found",
                       fix="write it with `upgrade-infra migrate test --accept FILE` or fix the path")
    data = load_yaml(p).data or {}
    ec = data.get("expected_changes") if isinstance(data, dict) else None
    if not isinstance(ec, dict) or not all(isinstance(v, dict) and all(isinstance(x, list) for x in v.values())
                                           for v in ec.values()):
        raise BadInput(f"{p}: expected_changes: must map version -> database -> list of tables or table.column",
                       fix="see docs/reference/stack.reference.yaml (migration.expected_changes)")
    return {str(k): {str(db): [str(x) for x in xs] for db, xs in v.items()} for k, v in ec.items()}


def compare_tables(before: DataFingerprint, after: DataFingerprint, expected: dict[str, set[str]]) -> list[dict]:
    whole, partial = whole_tables(expected), declared_columns(expected)
    rows = []
    for db in before.databases:
        names = sorted({t for d, t in before.tables if d == db} | {t for d, t in after.tables if d == db})
        for t in names:
            b, a = before.tables.get((db, t)), after.tables.get((db, t))
            declared = t in whole.get(db, set())
            own_cols = partial.get(db, {}).get(t, set())
            bookkeeping = framework_of(t) if not declared else None
            shape_b, shape_a = before.schema.get(db, {}).get(t), after.schema.get(db, {}).get(t)
            cols = changed_columns((b or {}).get("columns"), (a or {}).get("columns"))
            content = ("new" if b is None else "dropped" if a is None else
                       "not hashed" if not (b["hash"] and a["hash"]) else
                       "same" if b["hash"] == a["hash"] else "changed")
            problem = schema_note = None
            if not declared and not bookkeeping:
                if content == "dropped":
                    problem = "table dropped but not declared in migration.expected_changes"
                elif content == "new":
                    pass  # reported with its rows (IntegrityResult.inserted), never a failure
                elif b["rows"] != a["rows"]:
                    problem = f"row count changed {b['rows']} -> {a['rows']} on a table the migration must not touch"
                elif content == "same" and (added := _added_indexes_or_constraints(shape_b, shape_a, own_cols)):
                    schema_note = added  # rows and values unchanged: a migration that indexes or constrains
                elif content == "changed" or not _same_shape(shape_b, shape_a, own_cols):
                    rest = [c for c in cols if c not in own_cols]
                    if content == "changed" and own_cols and not cols:
                        problem = ("content changed and the table has no per-column hashes (too big): "
                                   "declare the whole table")
                    elif rest or content != "changed" or not own_cols:
                        what = f" in column(s) {', '.join(rest)}" if rest else ""
                        problem = f"content changed{what} on a table the migration must not touch"
            row = {"db": db, "table": t, "declared": declared or (sorted(own_cols) if own_cols else False),
                   "rows_before": (b or {}).get("rows"), "rows_after": (a or {}).get("rows"), "content": content,
                   "columns_changed": cols, "ok": problem is None, "problem": problem}
            if bookkeeping:
                row["bookkeeping"] = bookkeeping
            if schema_note:
                row["note"] = f"rows unchanged; {schema_note}"
            rows.append(row)
    return rows


def _added_indexes_or_constraints(before: dict | None, after: dict | None, allowed: set[str]) -> str | None:
    """What a migration added to a table whose rows it left alone: indexes (added, dropped or rebuilt)
    and new constraints (re-checked on the data by :func:`check_constraints`), e.g. "index ix_a added".
    None when anything else differs: a column, the primary key, or a constraint dropped or redefined
    (that weakens what the data is held to: still a failure on an undeclared table)."""
    if not before or not after:
        return None
    cols = [{c: v for c, v in x.get("columns", {}).items() if c not in allowed} for x in (before, after)]
    if cols[0] != cols[1] or before.get("primary_key") != after.get("primary_key"):
        return None
    cb, ca = before.get("constraints", {}), after.get("constraints", {})
    if any(ca.get(name) != c for name, c in cb.items()):
        return None
    ib, ia = before.get("indexes", {}), after.get("indexes", {})
    parts = ([f"constraint {n} added" for n in sorted(set(ca) - set(cb))]
             + [f"index {n} added" for n in sorted(set(ia) - set(ib))]
             + [f"index {n} dropped" for n in sorted(set(ib) - set(ia))]
             + [f"index {n} redefined" for n in sorted(set(ia) & set(ib)) if ia[n] != ib[n]])
    return ", ".join(parts) or None


def _same_shape(a: dict | None, b: dict | None, allowed: set[str]) -> bool:
    """Shapes equal, ignoring the columns declared one by one."""
    if not allowed:
        return a == b
    strip = [{**(x or {}), "columns": {c: v for c, v in (x or {}).get("columns", {}).items() if c not in allowed}}
             for x in (a, b)]
    return strip[0] == strip[1]


def check(conninfos: dict[str, str], before: DataFingerprint, after: DataFingerprint, expected: dict[str, set[str]],
          invariants: list[InvariantSpec] = (), *, full: bool = False, schema: str = "public") -> IntegrityResult:
    """All integrity checks on the migrated databases (``conninfos``: db -> conninfo, read-only use)."""
    res = IntegrityResult(tables=compare_tables(before, after, expected))
    touched = {(t["db"], t["table"]) for t in res.tables if t["content"] != "same"}  # incl. declared, not hashed
    for db in after.databases:
        shapes_b = before.schema.get(db, {})
        for t, shape in after.schema.get(db, {}).items():
            if full or (db, t) in touched or shape.get("constraints") != shapes_b.get(t, {}).get("constraints"):
                touched.add((db, t))
        counted: dict[str, int] = {}
        res.constraints += check_constraints(conninfos[db], db, after, {t for d, t in touched if d == db}, full,
                                             schema, counted)
        for row in res.tables:  # tables the fingerprint did not count (declared ones): counted by this scan
            if row["db"] == db and row["rows_after"] is None and row["table"] in counted:
                row["rows_after"] = counted[row["table"]]
    res.invariants = check_invariants(conninfos, invariants)
    res.suspects = [{"db": t["db"], "table": t["table"], "columns": t["columns_changed"]}
                    for t in res.tables if not t["ok"] and t["content"] == "changed"]
    return res


def check_env(env: Environment, before: DataFingerprint, after: DataFingerprint, to_versions: dict[str, str],
              extra: dict | None = None, **kw: Any) -> IntegrityResult:
    """:func:`check` with the manifest's expected changes and invariants for ``to_versions``."""
    m = env.manifest
    return check({db: env.conninfo(db) for db in after.databases}, before, after,
                 expected_tables(m, to_versions, extra), m.migration.invariants, **kw)


def check_constraints(conninfo: str, db: str, after: DataFingerprint, tables: set[str], full: bool,
                      schema: str = "public", rows: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """Re-check CHECK/NOT NULL of ``tables`` (one scan each, which also counts their rows into ``rows``),
    the foreign keys from or to them, NOT VALID constraints and invalid indexes."""
    out: list[dict[str, Any]] = []

    def add(table: str, name: str, kind: str, violations: int, problem: str | None = None, sample=None) -> None:
        out.append({"db": db, "table": table, "constraint": name, "type": kind, "violations": violations,
                    "ok": problem is None, "problem": problem, "sample": sample})

    with sql.connect(conninfo, read_only=True) as c:
        checks = [r for r in c.execute(CHECKS, [schema]).fetchall() if r["table"] in tables or not r["validated"]]
        fks = [r for r in c.execute(FOREIGN_KEYS, [schema]).fetchall() if full or r["table"] in tables
               or r["parent"] in tables]
        for r in c.execute(INVALID_INDEXES, [schema]).fetchall():
            add(r["table"], r["name"], "index", 0, "index is INVALID (a failed CREATE INDEX CONCURRENTLY?)")
        scanned: set[tuple[str, str]] = set()
        for t in sorted(tables):
            cols = after.schema.get(db, {}).get(t, {}).get("columns", {})
            mine = [(r["name"], r["expr"]) for r in checks if r["table"] == t]  # NOT VALID ones are scanned too
            nn = sorted(col for col, spec in cols.items() if spec["not_null"])
            counts = c.execute(table_check_query(schema, t, mine, nn)).fetchone()
            if rows is not None:
                rows[t] = int(counts["rows"])
            for i, (name, expr) in enumerate(mine):
                n = int(counts[f"k{i}"])
                add(t, name, "check", n, f"{n} row(s) violate CHECK ({expr})" if n else None)
                scanned.add((t, name))
            for i, col in enumerate(nn):
                n = int(counts[f"n{i}"])
                add(t, f"{col} NOT NULL", "not null", n, f"{n} row(s) have NULL in {col}" if n else None)
        for r in checks:
            if not r["validated"] and (r["table"], r["name"]) not in scanned:
                add(r["table"], r["name"], "check", 0, "constraint is NOT VALID (never validated)")
        for r in fks:
            q = orphan_query(schema, r["table"], list(r["cols"]), r["parent"], list(r["pcols"]))
            n = int(c.execute(q).fetchone()["n"])
            sample = [list(x.values()) for x in c.execute(orphan_query(schema, r["table"], list(r["cols"]),
                                                                       r["parent"], list(r["pcols"]), True))] if n else None
            problem = (f"{n} row(s) reference missing {r['parent']} rows" if n else
                       None if r["validated"] else "constraint is NOT VALID (never validated)")
            add(r["table"], r["name"], "foreign key", n, problem, sample)
    return out


def check_invariants(conninfos: dict[str, str], invariants: list[InvariantSpec]) -> list[dict[str, Any]]:
    out = []
    for inv in invariants:
        try:
            rows = sql.fetch(conninfos[inv.database], inv.sql, read_only=True)
            problem = f"{len(rows)} row(s) break it" if rows else None
        except Exception as e:  # noqa: BLE001 - a broken invariant is a failed invariant, with the reason
            rows, problem = [], f"could not run: {str(e).strip().splitlines()[0]}"
        out.append({"name": inv.name, "database": inv.database, "rows": len(rows), "ok": problem is None,
                    "problem": problem, "sample": [{k: str(v) for k, v in r.items()} for r in rows[:SAMPLE]]})
    return out
