"""Integrity for real migration frameworks, on a real cluster: bookkeeping tables reported as the
migrations applied, new tables and inserted rows reported (not failed), ``table.column`` declarations
that keep the rest of the table checked, and tables whose columns are all part of the primary key."""

from __future__ import annotations

import pytest

from upgrade_infra.core import sql
from upgrade_infra.migration import integrity, rowdiff
from upgrade_infra.restore.fingerprint import fingerprint_conninfos

SCHEMA = """
CREATE TABLE migrations (id serial PRIMARY KEY, "timestamp" bigint NOT NULL, name text NOT NULL);
INSERT INTO migrations ("timestamp", name) VALUES (1, 'InitialMigration1'), (2, 'AddUsers2'), (3, 'AddTags3');
CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL, email text NOT NULL);
CREATE TABLE workflows (id int PRIMARY KEY, name text NOT NULL, nodes text NOT NULL);
CREATE TABLE settings (key text PRIMARY KEY, value text);
CREATE TABLE tag_map (workflow_id int, tag text, PRIMARY KEY (workflow_id, tag));
INSERT INTO users SELECT g, 'user ' || g, 'u' || g || '@example.com' FROM generate_series(1, 30) g;
INSERT INTO workflows SELECT g, 'flow ' || g, '[]' FROM generate_series(1, 50) g;
INSERT INTO settings VALUES ('instance.id', 'abc');
INSERT INTO tag_map SELECT g, t FROM generate_series(1, 10) g, unnest(ARRAY['a', 'b']) t;
"""
# what a TypeORM release does: records its migrations, creates a table and seeds it, adds a column
# and fills it, inserts a default setting and a tag
MIGRATION = """
INSERT INTO migrations ("timestamp", name) VALUES (4, 'CreateWebhooks4'), (5, 'AddWorkflowVersionId5');
CREATE TABLE webhooks (id serial PRIMARY KEY, workflow_id int NOT NULL, path text NOT NULL);
INSERT INTO webhooks (workflow_id, path) SELECT id, 'hook-' || id FROM workflows WHERE id <= 12;
ALTER TABLE workflows ADD COLUMN version_id text; UPDATE workflows SET version_id = 'v-' || id;
INSERT INTO settings VALUES ('ui.banners', '[]');
INSERT INTO tag_map VALUES (1, 'migrated');
"""


def _db(pg_cluster, name: str, schema: str) -> str:
    pg_cluster.create_database(name)
    ci = pg_cluster.admin(name)
    sql.execute(ci, schema)
    return ci


def _entries(ci: str, fp) -> dict:
    from upgrade_infra.migration import frameworks

    return {"app": {t: frameworks.entries(ci, t, list(fp.schema["app"][t]["columns"]))
                    for t in frameworks.bookkeeping_in(fp.schema)["app"]}}


@pytest.fixture(scope="module")
def framework_app(pg_cluster):
    app = _db(pg_cluster, "fw_app", SCHEMA)
    sql.execute(pg_cluster.admin(), sql.drop_database("fw_before"), sql.create_database("fw_before", template="fw_app"))
    before = fingerprint_conninfos({"app": app})
    book_before = _entries(app, before)
    sql.execute(app, MIGRATION)
    after = fingerprint_conninfos({"app": app})
    return app, pg_cluster.admin("fw_before"), before, after, book_before


def test_bookkeeping_new_tables_inserts_and_column_declarations(framework_app):
    app, before_ci, before, after, book_before = framework_app
    res = integrity.check({"app": app}, before, after, {"app": {"workflows.version_id"}})
    t = {x["table"]: x for x in res.tables}
    assert t["migrations"]["ok"] and t["migrations"]["bookkeeping"].startswith("TypeORM")
    assert (t["migrations"]["rows_before"], t["migrations"]["rows_after"]) == (3, 5)
    assert t["webhooks"]["ok"] and t["webhooks"]["content"] == "new" and t["webhooks"]["rows_after"] == 12
    assert t["workflows"]["ok"] and t["workflows"]["declared"] == ["version_id"]
    assert t["users"]["ok"] and t["users"]["content"] == "same"
    # inserts into existing undeclared tables: suspected until rowdiff shows every old row unchanged
    assert not t["settings"]["ok"] and not t["tag_map"]["ok"]
    captured = rowdiff.capture({"app": app}, res.suspects, before, after)
    added: dict = {}
    res.lost_values = rowdiff.resolve({"app": before_ci}, captured, added=added)
    res.accept_pure_inserts(added)
    assert res.passed, res.failures
    assert "1 row(s) inserted" in t["settings"]["note"] and t["tag_map"]["ok"]
    inserted = {(i["table"], i["rows"], i["table_new"]) for i in res.to_dict()["inserted"]}
    assert {("webhooks", 12, True), ("settings", 1, False), ("tag_map", 1, False)} <= inserted
    from upgrade_infra.migration import frameworks

    applied = frameworks.applied(book_before, _entries(app, after))
    assert applied == [{"db": "app", "table": "migrations", "framework": "TypeORM (n8n and others)",
                        "rows_before": 3, "rows_after": 5, "new": ["AddWorkflowVersionId5", "CreateWebhooks4"]}]


def test_a_declared_column_keeps_the_rest_of_the_table_checked(pg_cluster):
    app = _db(pg_cluster, "fw_cols", SCHEMA)
    before = fingerprint_conninfos({"app": app})
    sql.execute(app, "ALTER TABLE workflows ADD COLUMN version_id text; UPDATE workflows SET version_id = 'v';"
                     "UPDATE workflows SET name = 'lost' WHERE id IN (3, 4)")
    after = fingerprint_conninfos({"app": app})
    res = integrity.check({"app": app}, before, after, {"app": {"workflows.version_id"}})
    wf = next(x for x in res.tables if x["table"] == "workflows")
    assert not wf["ok"] and "in column(s) name" in wf["problem"] and "version_id" not in wf["problem"]
    assert res.undeclared_changes() == {"app": ["workflows.name"]}
    whole = integrity.check({"app": app}, before, after, {"app": {"workflows"}})
    assert whole.passed  # declaring the whole table switches its content checks off


def test_all_primary_key_table_rows_are_named(pg_cluster):
    """`migrate test` crashed on its own SQL here (SELECT k AS k, FROM …) for such a table."""
    app = _db(pg_cluster, "fw_pk", SCHEMA)
    sql.execute(pg_cluster.admin(), sql.drop_database("fw_pk_before"), sql.create_database("fw_pk_before", template="fw_pk"))
    before = fingerprint_conninfos({"app": app})
    sql.execute(app, "DELETE FROM tag_map WHERE workflow_id = 2 AND tag = 'b'; INSERT INTO tag_map VALUES (7, 'c')")
    after = fingerprint_conninfos({"app": app})
    res = integrity.check({"app": app}, before, after, {"app": set()})
    assert [s["table"] for s in res.suspects] == ["tag_map"]
    captured = rowdiff.capture({"app": app}, res.suspects, before, after)
    added: dict = {}
    lost = rowdiff.resolve({"app": pg_cluster.admin("fw_pk_before")}, captured, added=added)
    assert lost == [{"db": "app", "table": "tag_map", "column": "(row)", "rows_changed": 1,
                     "sample_keys": ["workflow_id=2,tag=b"], "how": "rows deleted"}]
    assert added == {("app", "tag_map"): 1}
    res.lost_values = lost
    res.accept_pure_inserts(added)
    assert not res.passed  # a deleted row is never "only inserts"


def test_expected_changes_files_are_included(tmp_path):
    from upgrade_infra.core.errors import BadInput
    from upgrade_infra.stack.manifest import load_manifest

    from .conftest import REPO, write_stack

    def edit(data):
        data["migration"] = {"expected_changes": {"2.0": {"ledger": ["accounts.currency"]}},
                             "expected_changes_files": ["accepted.yaml"]}

    path = write_stack(tmp_path / "stack", REPO / "tests" / "data" / "ledger" / "stack.yaml", edit)
    (path.parent / "accepted.yaml").write_text("# reviewed\nexpected_changes:\n  '2.0':\n    ledger: [accounts.balance, audit]\n")
    m = load_manifest(path)
    assert integrity.expected_tables(m, {"ledger": "2.0"}) == {"ledger": {"accounts.currency", "accounts.balance", "audit"}}
    assert integrity.expected_tables(m, {"ledger": "1.0"}) == {"ledger": set()}
    (path.parent / "accepted.yaml").write_text("expected_changes: [oops]\n")
    with pytest.raises(BadInput, match="must map version -> database"):
        integrity.expected_tables(m, {"ledger": "2.0"})


def test_a_table_that_only_gained_an_index_or_a_constraint_is_reported_not_failed(pg_cluster):
    """Prefect 3.6 -> 3.9 adds indexes and a check constraint to tables whose rows it leaves alone: that
    was "content changed on a table the migration must not touch" although the rows were equal.
    A dropped constraint (the data held to less) still fails."""
    ci = _db(pg_cluster, "fw_idx", "CREATE TABLE runs (id int PRIMARY KEY, state text NOT NULL, n int NOT NULL);"
                                    "INSERT INTO runs SELECT g, 'done', g FROM generate_series(1, 40) g;"
                                    "CREATE TABLE logs (id int PRIMARY KEY, n int CONSTRAINT n_pos CHECK (n > 0));"
                                    "INSERT INTO logs SELECT g, g FROM generate_series(1, 5) g;")
    before = fingerprint_conninfos({"app": ci})
    sql.execute(ci, "CREATE INDEX ix_runs_state ON runs (state);"
                    "ALTER TABLE runs ADD CONSTRAINT n_nonneg CHECK (n >= 0);"
                    "ALTER TABLE logs DROP CONSTRAINT n_pos;")
    after = fingerprint_conninfos({"app": ci})
    rows = {r["table"]: r for r in integrity.compare_tables(before, after, {})}
    assert rows["runs"]["ok"], rows["runs"]["problem"]
    assert rows["runs"]["note"] == "rows unchanged; constraint n_nonneg added, index ix_runs_state added"
    assert not rows["logs"]["ok"] and "content changed" in rows["logs"]["problem"]
