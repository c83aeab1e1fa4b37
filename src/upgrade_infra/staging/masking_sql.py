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


# -- the leak scan: every text/JSON column of the copy, streamed out once per table --------------
SCAN_TYPES = TEXT_TYPES | {"json", "jsonb"}


def source_values(table: str, column: str, min_len: int) -> sql.Composed:
    """Distinct values of a masked column in the source (read-only): the needles of the leak scan."""
    col = sql.Identifier(column)
    return sql.SQL("SELECT DISTINCT {c}::text AS v FROM {t} WHERE {c} IS NOT NULL AND length(btrim({c}::text)) >= {n}"
                   ).format(c=col, t=qualified(table), n=sql.Literal(min_len))


def scan_cells(table: str, columns: list[str]) -> sql.Composed:
    """The SELECT whose ``COPY`` text output the leak scan reads: one line per row of ``table``,
    ``\\t c0 \\t c1 \\t … \\t`` (an empty column first and last), each cell ``btrim(col::text)``.

    So every cell sits between two tabs (COPY writes a tab, a newline or a backslash inside a value
    as an escape: a real tab always ends a cell, a real newline a row), a whole-cell match is a
    match framed by tabs, and a match's column is the number of tabs between the row's start and
    the match, minus one. Nothing else is done server-side: lower-casing and escapes are handled
    while matching (:func:`upgrade_infra.staging.masking.scan_text`), which is cheaper there.
    """
    cells = sql.SQL(", ").join(sql.SQL("btrim({}::text)").format(sql.Identifier(c)) for c in columns)
    return sql.SQL("SELECT '', {cells}, '' FROM {t}").format(cells=cells, t=qualified(table))
