"""Integrity checks on a real cluster: undeclared changes, lost values named by row, constraints, invariants."""

from __future__ import annotations

import pytest

from upgrade_infra.core import sql
from upgrade_infra.migration import integrity, rowdiff
from upgrade_infra.restore.fingerprint import fingerprint_conninfos
from upgrade_infra.stack.manifest import InvariantSpec

SCHEMA = """
CREATE TABLE users (id int PRIMARY KEY, full_name text NOT NULL, email text NOT NULL);
CREATE TABLE agents (id int PRIMARY KEY, user_id int NOT NULL REFERENCES users(id), name text NOT NULL,
                     system_prompt text NOT NULL DEFAULT '', CONSTRAINT ck_name CHECK (name <> ''));
CREATE TABLE notes (id bigint PRIMARY KEY, agent_id int REFERENCES agents(id), body text);
INSERT INTO users SELECT g, 'User ' || g, 'u' || g || '@example.com' FROM generate_series(1, 20) g;
INSERT INTO agents SELECT g, 1 + g % 20, 'agent ' || g, 'prompt ' || g FROM generate_series(1, 40) g;
INSERT INTO notes SELECT g, 1 + g % 40, 'note ' || g FROM generate_series(1, 300) g;
"""
# a "migration": the declared change on users, an undeclared loss of agents.system_prompt for ids 3-7,
# an orphaned note (FK triggers bypassed), and a NOT VALID check that existing rows violate
MIGRATION = """
ALTER TABLE users ADD COLUMN first_name text; UPDATE users SET first_name = split_part(full_name, ' ', 1);
UPDATE agents SET system_prompt = '' WHERE id BETWEEN 3 AND 7;
SET session_replication_role = replica; DELETE FROM agents WHERE id = 40; SET session_replication_role = origin;
ALTER TABLE notes ADD CONSTRAINT ck_body CHECK (body <> 'note 5') NOT VALID;
"""


@pytest.fixture(scope="module")
def migrated(pg_cluster):
    pg_cluster.create_database("int_app")
    app = pg_cluster.admin("int_app")
    sql.execute(app, SCHEMA)
    sql.execute(pg_cluster.admin(), sql.drop_database("int_before"), sql.create_database("int_before", template="int_app"))
    before = fingerprint_conninfos({"app": app})
    sql.execute(app, MIGRATION)
    after = fingerprint_conninfos({"app": app})
    invariants = [InvariantSpec(name="agents keep their prompt", database="app",
                                sql="SELECT id FROM agents WHERE system_prompt = '' ORDER BY id"),
                  InvariantSpec(name="users have email", database="app", sql="SELECT id FROM users WHERE email = ''"),
                  InvariantSpec(name="broken", database="app", sql="SELECT nope FROM users")]
    res = integrity.check({"app": app}, before, after, {"app": {"users", *integrity.BOOKKEEPING}}, invariants)
    return app, pg_cluster.admin("int_before"), before, after, res


def test_tables_declared_and_undeclared(migrated):
    *_, res = migrated
    t = {x["table"]: x for x in res.tables}
    assert t["users"]["ok"] and t["users"]["declared"] and t["users"]["content"] == "changed"
    assert not t["agents"]["ok"] and t["agents"]["rows_before"] == 40 and t["agents"]["rows_after"] == 39
    assert "row count changed 40 -> 39" in t["agents"]["problem"]
    # a new constraint on rows the migration left alone is reported on the table, and re-checked on the
    # data (test_constraints_rechecked: ck_body is violated, so the rehearsal still fails)
    assert t["notes"]["ok"] and t["notes"]["note"] == "rows unchanged; constraint ck_body added"
    assert res.suspects[0] == {"db": "app", "table": "agents", "columns": ["id", "name", "system_prompt", "user_id"]}


def test_constraints_rechecked(migrated):
    *_, res = migrated
    bad = {c["constraint"]: c for c in res.constraints if not c["ok"]}
    assert bad["notes_agent_id_fkey"]["violations"] > 0 and "missing agents rows" in bad["notes_agent_id_fkey"]["problem"]
    assert bad["notes_agent_id_fkey"]["sample"][0] == [40]
    assert bad["ck_body"]["violations"] == 1
    ok = {c["constraint"] for c in res.constraints if c["ok"]}
    assert {"ck_name", "full_name NOT NULL", "agents_user_id_fkey"} <= ok


def test_invariants(migrated):
    *_, res = migrated
    inv = {i["name"]: i for i in res.invariants}
    assert inv["agents keep their prompt"]["rows"] == 5 and inv["agents keep their prompt"]["sample"][0] == {"id": "3"}
    assert inv["users have email"]["ok"]
    assert "could not run" in inv["broken"]["problem"]
    assert not res.passed and any("invariant broken" in f for f in res.failures)


def test_rows_that_lost_values_are_named(migrated):
    app, before_ci, before, after, res = migrated
    captured = rowdiff.capture({"app": app}, res.suspects, before, after)
    lost = rowdiff.resolve({"app": before_ci}, captured)
    by_col = {x["column"]: x for x in lost}
    assert by_col["system_prompt"]["rows_changed"] == 5
    assert by_col["system_prompt"]["sample_keys"] == ["id=3", "id=4", "id=5", "id=6", "id=7"]
    assert by_col["(row)"]["how"] == "rows deleted" and by_col["(row)"]["sample_keys"] == ["id=40"]
    assert set(by_col) == {"system_prompt", "(row)"}
    res.lost_values = lost
    assert any(f.startswith("app.agents.system_prompt: values changed in 5 row(s), e.g. id=3") for f in res.failures)


def test_builders():
    q = integrity.table_check_query("public", "t", [("ck", "a > 0")], ["b"]).as_string(None)
    assert q == ('SELECT count(*) AS rows, count(*) FILTER (WHERE NOT (a > 0)) AS "k0", '
                 'count(*) FILTER (WHERE "b" IS NULL) AS "n0" FROM "public"."t"')
    q = integrity.orphan_query("public", "c", ["x"], "p", ["id"]).as_string(None)
    assert q == ('SELECT count(*) AS n FROM "public"."c" c WHERE c."x" IS NOT NULL AND NOT EXISTS '
                 '(SELECT 1 FROM "public"."p" p WHERE p."id" = c."x")')
    q = rowdiff.row_hash_query("public", "t", ["id"], ["v"]).as_string(None)
    assert q == ("SELECT 'id' || '=' || coalesce(\"id\"::text, 'NULL') AS k, "
                 'hash_record_extended(ROW("v"::text), 0) AS "h0" FROM "public"."t"')
