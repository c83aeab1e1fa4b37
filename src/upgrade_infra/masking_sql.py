"""Pure SQL builders for masking: session-local helper functions and one UPDATE per table.

Masking runs inside the staging cluster only. The deterministic core is an HMAC-SHA256 of the value
under a per-stack key, computed with PostgreSQL's built-in ``sha256()`` (no extension is installed,
so the staging schema stays identical to production's). The helpers are created in ``pg_temp``: they
exist for the masking session only and leave nothing behind in the database.

Outputs keep joins working (same input, same output, in every table and database) and commute with
the reference stack's 1.1.0 name split: ``fake_name('Ada Lovelace')`` is
``fake_first_name('Ada') || ' ' || fake_last_name('Lovelace')``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from psycopg import sql

BLOCK = 64  # SHA-256 block size, for the HMAC pads
# consonant-vowel syllables; three make a pronounceable, obviously synthetic word ("Zuvoka")
SYLLABLES = tuple(c + v for c in "bdfgkmnprstvz" for v in "aeiou")[:64]
FAKE_DOMAIN = "example.invalid"  # RFC 2606: mail to it can never be delivered
TEXT_TYPES = {"text", "character varying", "character", "citext"}
FAKE_RULES = {"fake_name", "fake_first_name", "fake_last_name", "fake_email", "hash"}


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """(inner, outer) pads of HMAC-SHA256 for ``key`` (RFC 2104)."""
    k = hashlib.sha256(key).digest() if len(key) > BLOCK else key
    k = k.ljust(BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in k), bytes(b ^ 0x5C for b in k)


def _bytea(b: bytes) -> str:
    return f"'\\x{b.hex()}'::bytea"  # hex digits only: safe inside a function body


def helper_functions(key: bytes) -> list[sql.Composed | sql.SQL]:
    """CREATE FUNCTION statements for pg_temp.uinfra_* (valid for the current session only)."""
    ipad, opad = hmac_pads(key)
    syl = "ARRAY[" + ",".join(f"'{s}'" for s in SYLLABLES) + "]"
    n = len(SYLLABLES)
    defs = {
        "uinfra_mac(dom text, v text) RETURNS bytea":
            f"SELECT sha256({_bytea(opad)} || sha256({_bytea(ipad)} || convert_to(dom || ':' || v, 'UTF8')))",
        "uinfra_word(d bytea, o int) RETURNS text":
            f"SELECT initcap(({syl})[1 + get_byte(d, o) % {n}] || ({syl})[1 + get_byte(d, o + 1) % {n}]"
            f" || ({syl})[1 + get_byte(d, o + 2) % {n}])",
        "uinfra_fake_first_name(v text) RETURNS text":
            "SELECT CASE WHEN btrim(v) = '' THEN v ELSE pg_temp.uinfra_word(pg_temp.uinfra_mac('first', v), 0) END",
        "uinfra_fake_last_name(v text) RETURNS text":
            "SELECT CASE WHEN btrim(v) = '' THEN v ELSE pg_temp.uinfra_word(pg_temp.uinfra_mac('last', v), 3) END",
        # split like the reference stack's migration: first run of non-blanks, then the rest
        "uinfra_fake_name(v text) RETURNS text":
            "SELECT CASE WHEN t = '' THEN v ELSE pg_temp.uinfra_fake_first_name(COALESCE(substring(t FROM '^\\S+'), ''))"
            " || COALESCE(' ' || pg_temp.uinfra_fake_last_name(NULLIF(substring(t FROM '^\\S+\\s+(.*)$'), '')), '')"
            " END FROM (SELECT regexp_replace(v, '^\\s+|\\s+$', '', 'g') AS t) AS s",
        "uinfra_fake_email(v text) RETURNS text":
            "SELECT CASE WHEN btrim(v) = '' THEN v ELSE lower(pg_temp.uinfra_word(d, 0)) || '.' "
            f"|| substr(encode(d, 'hex'), 7, 16) || '@{FAKE_DOMAIN}' END "
            "FROM (SELECT pg_temp.uinfra_mac('email', lower(btrim(v))) AS d) AS s",
        "uinfra_hash(v text) RETURNS text":
            "SELECT 'h_' || left(encode(pg_temp.uinfra_mac('hash', v), 'hex'), 32)",
    }
    return [sql.SQL(f"CREATE FUNCTION pg_temp.{sig} LANGUAGE sql IMMUTABLE STRICT AS $uinfra$ {body} $uinfra$")
            for sig, body in defs.items()]


def qualified(table: str) -> sql.Composed:
    """'users' or 'schema.users' as a quoted identifier."""
    schema, _, name = table.rpartition(".")
    return sql.Identifier(schema or "public", name)


def column_expr(column: str, rule: str, constant: Any = None) -> sql.Composed:
    """The value a masked column is set to."""
    col = sql.Identifier(column)
    if rule in FAKE_RULES:
        return sql.SQL("pg_temp.{}({}::text)").format(sql.Identifier(f"uinfra_{rule}"), col)
    if rule == "null":
        return sql.SQL("NULL")
    if rule == "constant":
        value = json.dumps(constant) if isinstance(constant, dict | list) else constant
        return sql.SQL("{}").format(sql.Literal(value))
    raise ValueError(f"rule {rule!r} has no SQL expression")


def update_table(table: str, columns: Mapping[str, tuple[str, Any]]) -> sql.Composed:
    """One UPDATE masking every listed column of ``table`` in a single pass.

    ``columns``: column -> (rule, constant). Rules that are fake_*/hash keep NULL as NULL.
    """
    sets = sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(c), column_expr(c, r, k))
                              for c, (r, k) in columns.items())
    return sql.SQL("UPDATE {} SET {}").format(qualified(table), sets)


def vacuum_full(table: str) -> sql.Composed:
    """Rewrite the table so the pre-masking row versions are not left behind in its files."""
    return sql.SQL("VACUUM (FULL, ANALYZE) {}").format(qualified(table))


def value_hashes(table: str, column: str) -> sql.Composed:
    """Distinct md5 of a column's non-empty values: compared across environments without moving values."""
    col = sql.Identifier(column)
    return sql.SQL("SELECT DISTINCT md5({c}::text) AS h FROM {t} WHERE {c} IS NOT NULL AND btrim({c}::text) <> ''"
                   ).format(c=col, t=qualified(table))


COLUMNS = sql.SQL(
    "SELECT table_schema AS schema, table_name AS table, column_name AS column, data_type, is_nullable "
    "FROM information_schema.columns WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
    "ORDER BY 1, 2, ordinal_position")


# -- the leak scan: every text/JSON column of the copy, one query per table ------------------------
SCAN_TYPES = TEXT_TYPES | {"json", "jsonb"}
TS_CONFIG = "simple"  # PostgreSQL's built-in word parser, no stemming: words are compared as written


def source_values(table: str, column: str, min_len: int) -> sql.Composed:
    """Distinct values of a masked column in the source (read-only): the needles of the leak scan."""
    col = sql.Identifier(column)
    return sql.SQL("SELECT DISTINCT {c}::text AS v FROM {t} WHERE {c} IS NOT NULL AND length(btrim({c}::text)) >= {n}"
                   ).format(c=col, t=qualified(table), n=sql.Literal(min_len))


def scan_table(table: str, columns: list[tuple[str, bool]]) -> sql.Composed:
    """One pass over ``table`` looking for any needle in any listed column.

    Parameters: ``v`` (the needles, lower-case) and ``mode`` (int[], per needle): 0 = found only as a
    whole cell value (a short word: as a word it would turn up by chance in any free text), 1 = also
    as words inside the text of columns not declared ``keep``, 2 = distinctive (several words, an
    e-mail, a long token): also inside ``keep`` columns (free text someone vouched for). ``columns``:
    (column, kept). Words are compared, not characters: ``olivia`` is found in "the user is Olivia."
    but not in "Olivian".

    Cost: each cell is parsed into words once (``to_tsvector``) and tested against ONE query OR-ing
    every needle's words, so the table is scanned once whatever the number of needles; only the cells
    that match (none in a clean copy) are then paired with the needles for the exact substring test.
    Returns per column index: how many distinct needles were found and the smallest needle index.
    """
    cells = sql.SQL(", ").join(
        sql.SQL("({i}, {k}, lower({c}::text))").format(i=sql.Literal(i), k=sql.Literal(kept), c=sql.Identifier("t", c))
        for i, (c, kept) in enumerate(columns))
    return sql.SQL(
        "WITH n AS MATERIALIZED ("
        "  SELECT i, v, m, plainto_tsquery({cfg}, v) AS q"
        "  FROM unnest(%(v)s::text[], %(mode)s::int[]) WITH ORDINALITY AS u(v, m, i)),"
        " nq AS MATERIALIZED (SELECT"
        "  (SELECT string_agg(q::text, ' | ') FROM n WHERE m >= 1 AND q::text <> '')::tsquery AS qa,"
        "  (SELECT string_agg(q::text, ' | ') FROM n WHERE m = 2 AND q::text <> '')::tsquery AS qd),"
        " x AS (SELECT x.col, x.kept, x.val, to_tsvector({cfg}, x.val) AS tsv FROM {t} AS t"
        "  CROSS JOIN LATERAL (VALUES {cells}) AS x(col, kept, val)"
        "  WHERE x.val IS NOT NULL),"
        " hit AS (SELECT x.* FROM x, nq WHERE x.tsv @@ (CASE WHEN x.kept THEN nq.qd ELSE nq.qa END)"
        "  OR btrim(x.val) IN (SELECT v FROM n))"
        " SELECT hit.col, count(DISTINCT n.i) AS hits, min(n.i) AS first FROM hit JOIN n"
        "  ON (btrim(hit.val) = n.v OR (n.m >= CASE WHEN hit.kept THEN 2 ELSE 1 END"
        "      AND hit.tsv @@ n.q AND strpos(hit.val, n.v) > 0))"
        " GROUP BY hit.col ORDER BY hit.col"
    ).format(cfg=sql.Literal(TS_CONFIG), t=qualified(table), cells=cells)
