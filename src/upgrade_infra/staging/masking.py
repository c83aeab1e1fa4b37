"""Masking of personal data in a staging copy: rules from ``staging.masking``, checked, applied, verified.

Rules: ``fake_name``, ``fake_first_name``, ``fake_last_name``, ``fake_email``, ``hash``, ``null``,
``{constant: v}``, ``keep``; long form ``{rule: R, if_exists: true}`` for a column that only some
releases of the app have. Masking is deterministic (HMAC under a per-stack key kept in the state dir),
so equal values stay equal across tables and databases and joins still match.

Three steps, all against live databases:

1. :func:`plan` checks every rule against the live schema (a missing table/column is an error naming
   the manifest line, unless ``if_exists``; a rule must fit the column's type);
2. :func:`apply` runs one UPDATE per table in one transaction per database, then rewrites the table
   (``VACUUM FULL``) so old row versions do not stay in its files;
3. :func:`leak_check` compares the md5 sets of every masked column between the source (read-only)
   and the copy (no source value may survive in place), then scans *every* text and JSON column of
   the copy, masked or not, for the source's values of the masked columns and for the source's
   secrets (a first name inside a prompt, a token in a JSON payload): each table streamed out once
   (``COPY``) through one Aho-Corasick automaton holding every value.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from upgrade_infra.core import redact, sql
from upgrade_infra.core.errors import CheckFailed, ManifestError, ManifestIssue
from upgrade_infra.core.state import StateDir
from upgrade_infra.stack import secrets as secretlib
from upgrade_infra.stack.manifest import Manifest, MaskRuleSpec
from upgrade_infra.staging import masking_sql as msql

ConninfoFor = Callable[[str], str]  # database name -> conninfo
KEY_OWNER, KEY_NAME = "_stack", "masking_key"


@dataclass(frozen=True)
class ColumnRule:
    database: str
    table: str
    column: str
    rule: str  # a rule name, or "constant"
    constant: Any = None
    if_exists: bool = False

    @property
    def where(self) -> str:
        return f"{self.database}.{self.table}.{self.column}"


@dataclass
class MaskPlan:
    apply: list[ColumnRule] = field(default_factory=list)
    keep: list[ColumnRule] = field(default_factory=list)
    skipped: list[ColumnRule] = field(default_factory=list)  # if_exists and absent from the live schema

    def by_table(self, db: str) -> dict[str, dict[str, tuple[str, Any]]]:
        out: dict[str, dict[str, tuple[str, Any]]] = {}
        for r in self.apply:
            if r.database == db:
                out.setdefault(r.table, {})[r.column] = (r.rule, r.constant)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"apply": [r.where + f" ({r.rule})" for r in self.apply], "keep": [r.where for r in self.keep],
                "skipped_absent": [r.where for r in self.skipped]}


def rules_of(m: Manifest) -> list[ColumnRule]:
    out = []
    for db, tables in m.staging.masking.items():
        for table, cols in tables.items():
            for col, rule in cols.items():
                if isinstance(rule, MaskRuleSpec):
                    name = rule.rule or "constant"
                    out.append(ColumnRule(db, table, col, name, rule.constant, rule.if_exists))
                else:
                    out.append(ColumnRule(db, table, col, rule))
    return out


def masking_key(state: StateDir) -> bytes:
    """The per-stack HMAC key (generated once, 0600 in the state dir; never copied into staging)."""
    value = secretlib._generated(state, KEY_OWNER, KEY_NAME)  # noqa: SLF001 - shared generator
    redact.register(value)
    return value.encode()


def _issue(m: Manifest, r: ColumnRule, problem: str, fix: str) -> ManifestIssue:
    loc = ("staging", "masking", r.database, r.table, r.column)
    return ManifestIssue(str(m.path), m.line_of(*loc), ".".join(loc), problem, fix)


def plan(m: Manifest, conninfo_for: ConninfoFor, *, read_only: bool = True, context: str = "") -> MaskPlan:
    """Check the rules against the live schema of each database; raise one error listing every problem."""
    rules = rules_of(m)
    live: dict[str, dict[str, dict[str, dict]]] = {}
    for db in {r.database for r in rules}:
        tables: dict[str, dict[str, dict]] = {}
        for row in sql.fetch(conninfo_for(db), msql.COLUMNS, read_only=read_only):
            name = row["table"] if row["schema"] == "public" else f"{row['schema']}.{row['table']}"
            tables.setdefault(name, {})[row["column"]] = row
        live[db] = tables
    out, issues = MaskPlan(), []
    where = f" ({context})" if context else ""
    for r in rules:
        cols = live[r.database].get(r.table)
        col = cols.get(r.column) if cols else None
        if col is None:
            if r.if_exists:
                out.skipped.append(r)
                continue
            what = (f"table {r.table!r} does not exist in database {r.database!r}{where}" if cols is None else
                    f"column {r.table}.{r.column} does not exist in database {r.database!r}{where}; it has: "
                    + ", ".join(cols))
            issues.append(_issue(m, r, what, f"fix the name, or write {{rule: {r.rule}, if_exists: true}} when "
                                 "only some releases of the app have it"))
            continue
        problem = _type_problem(r, col)
        if problem:
            issues.append(_issue(m, r, problem[0], problem[1]))
        elif r.rule == "keep":
            out.keep.append(r)
        else:
            out.apply.append(r)
    if issues:
        raise ManifestError(issues)
    return out


def _type_problem(r: ColumnRule, col: dict) -> tuple[str, str] | None:
    if r.rule in msql.FAKE_RULES and col["data_type"] not in msql.TEXT_TYPES:
        return (f"rule {r.rule} needs a text column; {r.table}.{r.column} is {col['data_type']}",
                "use null, {constant: …} or keep for non-text columns")
    if r.rule == "null" and col["is_nullable"] != "YES":
        return (f"rule null on {r.table}.{r.column}, which is NOT NULL", "use hash, a fake_* rule or {constant: …}")
    return None


def apply(p: MaskPlan, conninfo_for: ConninfoFor, key: bytes, *, vacuum: bool = True) -> dict[str, Any]:
    """Mask the copy. One transaction per database: all of its tables are masked, or none."""
    t0 = time.monotonic()
    tables = []
    for db in sorted({r.database for r in p.apply}):
        per_table = p.by_table(db)
        with sql.connect(conninfo_for(db)) as c:
            with c.transaction():
                for q in msql.helper_functions(key):
                    c.execute(q)
                for table, cols in per_table.items():
                    t1 = time.monotonic()
                    n = c.execute(msql.update_table(table, cols)).rowcount
                    tables.append({"database": db, "table": table, "columns": sorted(cols), "rows": n,
                                   "seconds": round(time.monotonic() - t1, 3)})
            if vacuum:
                for table in per_table:
                    c.execute(msql.vacuum_full(table))
    return {"tables": tables, "skipped_absent": [r.where for r in p.skipped], "kept": [r.where for r in p.keep],
            "seconds": round(time.monotonic() - t0, 3)}


def _hashes(conninfo: str, r: ColumnRule, read_only: bool) -> set[str]:
    return {row["h"] for row in sql.fetch(conninfo, msql.value_hashes(r.table, r.column), read_only=read_only)}


MIN_NEEDLE = 3  # shorter values ("Al", "x") are not looked for at all
MIN_WORD = 5  # a one-word value shorter than this is only found as a whole cell: as a word ("Mei", "Kim")
#               it turns up by chance in any free text
DISTINCTIVE_LEN = 16  # a one-word value this long (a token, a hash) is distinctive enough to find in free text


def needle_mode(v: str) -> int:
    """0: whole cell only; 1: also a word in unmasked text; 2: distinctive, also in ``keep`` columns."""
    v = v.strip()
    if any(ch.isspace() for ch in v) or "@" in v or len(v) >= DISTINCTIVE_LEN:
        return 2
    return 1 if len(v) >= MIN_WORD else 0


def needles(p: MaskPlan, source_for: ConninfoFor, secrets: dict[str, str] | None = None) -> dict[str, str]:
    """Lower-cased value -> where it comes from: the source's values of every masked column (and, for
    ``fake_name`` columns, each capitalised part of a name: "Olivia Smith" also looks for "olivia"
    and "smith"), and the source's secrets (read-only sessions; the values stay in this process)."""
    out: dict[str, str] = {}
    for r in p.apply:
        for row in sql.fetch(source_for(r.database), msql.source_values(r.table, r.column, MIN_NEEDLE),
                             read_only=True):
            value = row["v"].strip()
            if len(value) < MIN_NEEDLE:
                continue  # blanks around a short value (the query trims spaces only)
            out.setdefault(value.lower(), r.where)
            if r.rule == "fake_name":
                for part in value.split():
                    if len(part) >= MIN_WORD and part[:1].isupper():
                        out.setdefault(part.lower(), f"{r.where} (part of a name)")
    for name, value in (secrets or {}).items():
        if value and len(value) >= 8:
            out.setdefault(value.lower(), f"secret {name}")
    return out


# tables streamed side by side (one connection each): the server renders one table while this process
# matches another; 237 MB of text on 2 cores: 1 worker 2.7-2.9 s, 2 workers 1.9 s, 4 workers 1.9 s
SCAN_WORKERS = max(1, min(2, os.cpu_count() or 1))


# COPY's text format writes these characters of a value as a backslash and a letter (\\n, \\t, \\\\ …)
COPY_ESCAPED = "\\\b\t\n\v\f\r"
_ESCAPE = re.compile(rb"\\.")
_ESCAPED_AS_SPACES = str.maketrans({ch: "  " for ch in COPY_ESCAPED})
# up to this many bytes of needles (~8000 values) a DFA is the fastest automaton (10 MB of text: 0.07 s
# against 0.15 s at 5000 values); beyond, it outgrows the CPU caches and the library's default wins
DFA_MAX_BYTES = 96 * 1024


def scan_text(buf: bytes) -> bytes:
    """A batch of :func:`upgrade_infra.staging.masking_sql.scan_cells` rows as the matcher reads it: each COPY
    escape (a newline, a tab, a backslash, NULL's ``\\N`` inside a value) as two spaces, then lower-cased."""
    if b"\\" in buf:
        buf = _ESCAPE.sub(b"  ", buf)
    return buf.lower() if buf.isascii() else buf.decode("utf-8", "surrogateescape").lower().encode(
        "utf-8", "surrogateescape")


def scan_pattern(value: str) -> bytes:
    """A (lower-case, stripped) value as it appears in :func:`scan_text`'s output."""
    return value.translate(_ESCAPED_AS_SPACES).encode("utf-8", "surrogateescape")


class Matcher:
    """Every needle at once: one Aho-Corasick automaton over the UTF-8 bytes of the scan stream (see
    :func:`upgrade_infra.staging.masking_sql.scan_cells` and :func:`scan_text`), plus the rules of :func:`needle_mode`.

    A needle found as a whole cell (framed by tabs) always counts. Otherwise it counts when it is a
    word (the characters before and after it are not letters or digits: ``olivia`` is found in "the
    user is olivia." but not in "olivian") and its mode is 1 (any column but ``keep``) or 2 (every
    column); a token (16+ characters, no blank, no ``@``) counts even glued to other text. Mode-0
    needles are looked for with their framing tabs, so their matches inside words (``kim`` in
    "skimmed") never reach Python."""

    def __init__(self, values: list[str]):
        import ahocorasick_rs  # a core dependency; imported here to keep `import upgrade_infra` light

        self.values = values
        self.modes = [needle_mode(v) for v in values]
        by_pattern: dict[bytes, list[int]] = {}
        for i, (v, m) in enumerate(zip(values, self.modes, strict=True)):
            pat = scan_pattern(v)
            if pat.strip():
                by_pattern.setdefault(b"\t" + pat + b"\t" if m == 0 else pat, []).append(i)
        self.patterns = list(by_pattern)
        self.needles_of = list(by_pattern.values())
        self.framed = [self.modes[n[0]] == 0 for n in self.needles_of]
        # a token or a hash (16+ characters, no blank, no @) counts wherever it is, even glued to other text
        self.anywhere = [self.modes[n[0]] == 2 and not any(ch.isspace() or ch == "@" for ch in values[n[0]])
                         for n in self.needles_of]
        # an e-mail ends where its ASCII characters end ("ada@corp.example" in "ada@corp.exampleé", as
        # PostgreSQL's own word parser reads it)
        self.ascii_edges = ["@" in values[n[0]] for n in self.needles_of]
        # several words ("olivia smith", "o'brien") glued to other text count when each of them is a word
        # somewhere in the same cell (as PostgreSQL's word search read them: "olivia smithxolivia smith")
        self.words = [None if ascii_edges else _words(pat)
                      for pat, ascii_edges in zip(self.patterns, self.ascii_edges, strict=True)]
        impl = ahocorasick_rs.Implementation.DFA if sum(map(len, self.patterns)) <= DFA_MAX_BYTES else None
        self.ac = ahocorasick_rs.BytesAhoCorasick(self.patterns, implementation=impl) if self.patterns else None

    def search(self, buf: bytes, kept: list[bool], found: dict[int, set[int]]) -> None:
        """Add to ``found`` (column index -> needle indexes) what ``buf`` (whole rows, through
        :func:`scan_text`) holds."""
        if self.ac is None:
            return
        for p, s, e in self.ac.find_matches_as_indexes(buf, overlapping=True):
            if self.framed[p]:
                s += 1  # the cell starts after its framing tab
                whole = True
            else:
                whole = _cell_edge(buf, s - 1, -1) and _cell_edge(buf, e, 1)
                if not (whole or self.anywhere[p]) and (_word_byte(buf, s - 1, -1, self.ascii_edges[p])
                                                        or _word_byte(buf, e, 1, self.ascii_edges[p])):
                    words = self.words[p]
                    if not words or not all(_has_word(buf, w, buf.rfind(b"\t", 0, s), buf.find(b"\t", e))
                                             for w in words):
                        continue  # inside a longer word
            col = buf.count(b"\t", buf.rfind(b"\n", 0, s) + 1, s) - 1
            for n in self.needles_of[p]:
                if whole or self.modes[n] >= (2 if kept[col] else 1):
                    found.setdefault(col, set()).add(n)


def _cell_edge(buf: bytes, i: int, step: int) -> bool:
    """Only spaces (an escape, e.g. a trailing newline) between byte ``i`` and the cell's tab?"""
    while buf[i] == 32:
        i += step
    return buf[i] == 9


_WORD = re.compile(r"[^\W_]+")


def _words(pattern: bytes) -> list[bytes] | None:
    words = [w.encode() for w in _WORD.findall(pattern.decode("utf-8", "surrogateescape"))]
    return words if len(words) > 1 else None


def _has_word(buf: bytes, word: bytes, start: int, end: int) -> bool:
    """Is ``word`` a word somewhere in ``buf[start:end]``?"""
    i = buf.find(word, start, end)
    while i >= 0:
        if not _word_byte(buf, i - 1, -1) and not _word_byte(buf, i + len(word), 1):
            return True
        i = buf.find(word, i + 1, end)
    return False


def _word_byte(buf: bytes, i: int, step: int, ascii_only: bool = False) -> bool:
    """Is the character at byte ``i`` (before a match: step -1, after: +1) a letter or a digit?"""
    b = buf[i]
    if b < 0x80:
        return chr(b).isalnum()
    if ascii_only:
        return False
    if step < 0:  # back to the first byte of that UTF-8 sequence
        while i > 0 and buf[i] & 0xC0 == 0x80:
            i -= 1
    end = i + 1
    while end < len(buf) and buf[end] & 0xC0 == 0x80:
        end += 1
    return buf[i:end].decode("utf-8", "replace").isalnum()


def scan(p: MaskPlan, copy_for: ConninfoFor, found: dict[str, str], databases: list[str]) -> dict[str, Any]:
    """Every text/varchar/json/jsonb column of the copy, each table streamed out once with ``COPY``
    (:func:`upgrade_infra.staging.masking_sql.scan_cells`) through one automaton matching every needle at
    once (:class:`Matcher`), ``SCAN_WORKERS`` tables at a time: which columns hold which kind of
    source value. Cost: linear in the text scanned, whatever the number of needles."""
    t0 = time.monotonic()
    values = list(found)
    matcher = Matcher(values)
    masked = {(r.database, r.table, r.column) for r in p.apply}
    kept = {(r.database, r.table, r.column) for r in p.keep}
    jobs: list[tuple[str, str, list[tuple[str, bool]]]] = []
    for db in databases:
        by_table: dict[str, list[tuple[str, bool]]] = {}
        conninfo = copy_for(db)
        for row in sql.fetch(conninfo, msql.COLUMNS):
            name = row["table"] if row["schema"] == "public" else f"{row['schema']}.{row['table']}"
            if row["data_type"] in msql.SCAN_TYPES and (db, name, row["column"]) not in masked:
                by_table.setdefault(name, []).append((row["column"], (db, name, row["column"]) in kept))
        kinds = _relkinds(conninfo)
        jobs += [(db, t, cols) for t, cols in sorted(by_table.items()) if kinds.get(t) in ("r", "p", "m")]  # no views

    def one(job: tuple[str, str, list[tuple[str, bool]]]) -> tuple[dict[int, set[int]], int, float]:
        db, table, cols = job
        t1 = time.monotonic()
        hits: dict[int, set[int]] = {}
        size = 0
        if values:
            kept_cols = [k for _, k in cols]
            for buf in sql.copy_out(copy_for(db), msql.scan_cells(table, [c for c, _ in cols])):
                size += len(buf)
                matcher.search(scan_text(buf), kept_cols, hits)
        return hits, size, round(time.monotonic() - t1, 3)

    hits, timing, scanned = [], {}, 0
    with ThreadPoolExecutor(max_workers=SCAN_WORKERS) as pool:
        for (db, table, cols), (by_col, size, secs) in zip(jobs, pool.map(one, jobs), strict=True):
            timing[f"{db}.{table}"] = secs
            scanned += size
            for i in sorted(by_col):
                col = cols[i][0]
                hits.append({"database": db, "table": table, "column": col, "where": f"{db}.{table}.{col}",
                             "values": len(by_col[i]), "example_from": found[values[min(by_col[i])]]})
    secs = time.monotonic() - t0
    return {"ok": not hits, "hits": hits, "tables": len(jobs), "columns": sum(len(c) for _, _, c in jobs),
            "needles": len(values), "mb": round(scanned / 1e6, 3), "seconds": round(secs, 3),
            "mb_per_s": round(scanned / 1e6 / secs, 1) if secs > 0 else None, "seconds_by_table": timing}


def _relkinds(conninfo: str) -> dict[str, str]:
    q = ("SELECT CASE WHEN n.nspname = 'public' THEN c.relname ELSE n.nspname || '.' || c.relname END AS name, "
         "c.relkind::text AS kind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
         "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'")
    return {r["name"]: r["kind"] for r in sql.fetch(conninfo, q)}


def leak_check(p: MaskPlan, source_for: ConninfoFor, copy_for: ConninfoFor, *,
               secrets: dict[str, str] | None = None, databases: list[str] | None = None) -> dict[str, Any]:
    """Per masked column: how many distinct source values still appear in the copy (must be 0);
    then the scan of every text/JSON column of ``databases`` for source values and ``secrets``.

    The per-column check moves only md5 digests; the source is read through read-only sessions. For
    ``null`` the copy must hold no value at all; for a constant, only the constant.
    """
    rows = []
    for r in p.apply:
        src = _hashes(source_for(r.database), r, True)
        dst = _hashes(copy_for(r.database), r, False)
        if r.rule == "null":
            surviving = len(dst)
        elif r.rule == "constant":
            surviving = max(len(dst) - 1, 0)
        else:
            surviving = len(src & dst)
        rows.append({"column": r.where, "rule": r.rule, "source_values": len(src), "masked_values": len(dst),
                     "surviving": surviving, "ok": surviving == 0})
    dbs = databases if databases is not None else sorted({r.database for r in p.apply} | {r.database for r in p.keep})
    found = needles(p, source_for, secrets)
    sc = scan(p, copy_for, found, dbs)
    return {"ok": all(r["ok"] for r in rows) and sc["ok"], "columns": rows, "scan": sc}


def require_no_leak(report: dict[str, Any]) -> None:
    bad = [f"{r['column']}: {r['surviving']} production value(s) survive" for r in report["columns"] if not r["ok"]]
    bad += [f"{h['database']}.{h['table']}.{h['column']} (table {h['table']}, column {h['column']}) holds "
            f"{h['values']} production value(s) of {h['example_from']}" for h in (report.get("scan") or {}).get("hits", [])]
    if bad:
        raise CheckFailed("masking leak check failed: " + "; ".join(bad),
                          fix="mask each column named in staging.masking (or keep: after checking it holds no "
                              "personal data); the staging copy was not started")
