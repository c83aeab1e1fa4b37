"""Fingerprints on a real scratch cluster: order independence, what a diff names, round trips."""

from __future__ import annotations

import json

import pytest

from upgrade_infra.core import sql
from upgrade_infra.restore.fingerprint import DataFingerprint, fingerprint_conninfos, table_hash_query

SCHEMA = """
CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL, email text CHECK (position('@' in email) > 1));
CREATE TABLE notes (id bigint PRIMARY KEY, user_id int NOT NULL REFERENCES users(id), body text, meta json);
CREATE INDEX ix_notes_user ON notes (user_id);
"""


def _db(pg_cluster, name: str, order: str = "ASC", extra: str = "") -> str:
    pg_cluster.create_database(name)
    ci = pg_cluster.admin(name)
    sql.execute(ci, SCHEMA,
                f"INSERT INTO users SELECT g, 'user ' || g, 'u' || g || '@example.com' FROM generate_series(1, 50) g "
                f"ORDER BY g {order}",
                f"INSERT INTO notes SELECT g, 1 + g % 50, 'note ' || g, json_build_object('g', g) "
                f"FROM generate_series(1, 400) g ORDER BY g {order}", *([extra] if extra else []))
    return ci


@pytest.fixture(scope="module")
def base(pg_cluster):
    return fingerprint_conninfos({"app": _db(pg_cluster, "fp_base")}, "base")


def test_builder_sorts_columns_and_hashes_records():
    q = table_hash_query("public", "t", ["b", "a"], per_column=True).as_string(None)
    assert q.startswith('SELECT count(*) AS rows, coalesce(sum(hash_record_extended(ROW("a", "b"), 0)), 0)::text')
    assert 'sum(hash_record_extended(ROW("a"), 0)), 0)::text AS "c0"' in q
    assert 'FROM "public"."t"' in q
    assert '"a"::text' in table_hash_query("public", "t", ["a"], as_text=True).as_string(None)


def test_insertion_order_does_not_matter(pg_cluster, base):
    other = fingerprint_conninfos({"app": _db(pg_cluster, "fp_desc", order="DESC")}, "other")
    assert base.diff(other) == []
    assert base.tables[("app", "users")]["rows"] == 50
    assert base.tables[("app", "notes")]["method"] == "text"  # json has no hash function
    assert base.tables[("app", "users")]["method"] == "record"
    assert base.schema["app"]["notes"]["primary_key"] == ["id"]


def test_changed_values_are_named_by_column(pg_cluster, base):
    ci = _db(pg_cluster, "fp_lossy", extra="UPDATE users SET name = '' WHERE id <= 3")
    diffs = base.diff(fingerprint_conninfos({"app": ci}, "lossy"))
    assert [(d.table, d.what) for d in diffs] == [("users", "content")]
    assert "column(s) name" in str(diffs[0])


def test_rows_schema_and_duplicates(pg_cluster, base):
    ci = _db(pg_cluster, "fp_shape", extra=(
        "DELETE FROM notes WHERE id > 390; ALTER TABLE users ADD COLUMN age int; "
        "CREATE INDEX ix_users_name ON users (name); DROP INDEX ix_notes_user"))
    diffs = {(d.table, d.what, d.detail.split(" (")[0]) for d in base.diff(fingerprint_conninfos({"app": ci}))}
    assert ("notes", "rows", "rows 400 -> 390") in diffs
    assert ("users", "column", "column age added") in diffs
    assert ("users", "index", "index ix_users_name added") in diffs
    assert ("notes", "index", "index ix_notes_user dropped") in diffs
    # a duplicated row changes count and hash (a plain XOR of row hashes would not see two copies)
    pg_cluster.create_database("fp_dup")
    dup = pg_cluster.admin("fp_dup")
    sql.execute(dup, "CREATE TABLE t (v int)", "INSERT INTO t VALUES (1), (2)")
    one = fingerprint_conninfos({"d": dup})
    sql.execute(dup, "INSERT INTO t VALUES (1), (1)")
    assert {d.what for d in one.diff(fingerprint_conninfos({"d": dup}))} == {"rows", "content"}


def test_column_position_does_not_matter(pg_cluster):
    pg_cluster.create_database("fp_pos1")
    pg_cluster.create_database("fp_pos2")
    a, b = pg_cluster.admin("fp_pos1"), pg_cluster.admin("fp_pos2")
    sql.execute(a, "CREATE TABLE t (x int, y text NOT NULL DEFAULT '')", "INSERT INTO t VALUES (1, 'a'), (2, 'b')")
    sql.execute(b, "CREATE TABLE t (x int, y0 text)", "ALTER TABLE t DROP COLUMN y0",
                "ALTER TABLE t ADD COLUMN y text NOT NULL DEFAULT ''", "INSERT INTO t VALUES (2, 'b'), (1, 'a')")
    assert fingerprint_conninfos({"d": a}).diff(fingerprint_conninfos({"d": b})) == []


def test_round_trip_skip_and_missing(pg_cluster, base):
    again = DataFingerprint.from_dict(json.loads(json.dumps(base.to_dict())))
    assert again.diff(base) == [] and again.tables == base.tables and again.sizes == base.sizes
    ci = pg_cluster.admin("fp_base")
    partial = fingerprint_conninfos({"app": ci}, skip_tables=("notes",), columns=False)
    assert ("app", "notes") not in partial.tables and "columns" not in partial.tables[("app", "users")]
    diffs = base.diff(partial)
    assert [(d.table, d.what, d.detail) for d in diffs] == [("notes", "table", "table dropped")]
    assert [d.what for d in base.diff(DataFingerprint("empty"))] == ["database"]


def test_count_only_tables_are_compared_by_rows_and_shape(pg_cluster, base):
    ci = pg_cluster.admin("fp_base")
    counted = fingerprint_conninfos({"app": ci}, count_only=[("app", "notes")])
    assert counted.tables[("app", "notes")] == {"rows": 400, "hash": None, "method": "count",
                                                "bytes": counted.tables[("app", "notes")]["bytes"]}
    assert base.diff(counted) == []
    lossy_ci = _db(pg_cluster, "fp_lossy_counted", extra="UPDATE users SET name = '' WHERE id <= 3")
    lossy = fingerprint_conninfos({"app": lossy_ci}, count_only=[("app", "users")])
    assert base.diff(lossy) == []  # users' values changed, but it was only counted
    shaped = fingerprint_conninfos({"app": lossy_ci}, shape_only=[("app", "users"), ("app", "notes")])
    assert shaped.tables[("app", "users")]["rows"] is None and shaped.tables[("app", "users")]["method"] == "shape"
    assert base.diff(shaped) == [] and shaped.total_rows() == 0
