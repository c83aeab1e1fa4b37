"""The sql kind (and workflow sql steps) on a real PostgreSQL: expectations, read-only, timeouts."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from upgrade_infra.core import sql
from upgrade_infra.operations.session import Session

from .checks_support import run_checks, write_tiny
from .conftest import free_base

Q = {"kind": "sql", "database": "app"}
CHECKS = [
    {"name": "invariant holds", **Q, "query": "SELECT id FROM notes WHERE body IS NULL", "expect": {"rows": 0}},
    {"name": "invariant broken", **Q, "query": "SELECT id, body FROM notes WHERE id > 1 ORDER BY id",
     "expect": {"rows": 0}},
    {"name": "values", **Q, "query": "SELECT count(*) AS n, sum(score) AS total, max(at) AS last FROM notes",
     "expect": {"json": [{"path": "$[0].n", "equals": 3}, {"path": "$[0].total", "equals": 7.5},
                         {"path": "$[0].last", "type": "string"}]}},
    {"name": "min rows", **Q, "query": "SELECT * FROM notes", "expect": {"min_rows": 5}},
    {"name": "read only", **Q, "query": "INSERT INTO notes (body) VALUES ('x')"},
    {"name": "bad sql", **Q, "query": "SELECT nope FROM notes"},
    {"name": "timeout", **Q, "timeout_s": 1, "query": "SELECT pg_sleep(5)"},
    {"name": "params", **Q, "query": "SELECT body FROM notes WHERE id = %(id)s", "params": {"id": 2},
     "expect": {"rows": 1, "json": [{"path": "$[0].body", "equals": "two"}]}},
    {"name": "flow with sql", "kind": "workflow", "steps": [
        {"sql": {"database": "app", "query": "SELECT max(id) AS top FROM notes"}, "save": {"top": "$[0].top"}},
        {"sql": {"database": "app", "query": "SELECT body FROM notes WHERE id = %(t)s", "params": {"t": "{top}"}},
         "expect": {"rows": 1, "json": [{"path": "$[0].body", "equals": "three"}]}}]},
]


@pytest.fixture(scope="module")
def results():
    root = Path(tempfile.mkdtemp(prefix="uinfra-sqlchk-"))
    os.chmod(root, 0o711)
    base = free_base(50)  # below the ephemeral range: no outgoing connection takes it before the cluster does
    env = Session(write_tiny(root / "stack", CHECKS, base=base), root / "state").env("production")
    env.state.ensure()
    try:
        env.provision_database()
        sql.execute(env.conninfo("app"),
                    "CREATE TABLE notes (id serial PRIMARY KEY, body text, score numeric, at timestamptz DEFAULT now())",
                    "INSERT INTO notes (body, score) VALUES ('one', 1), ('two', 2.5), ('three', 4)")
        yield run_checks(env, root / "report")
    finally:
        env.stop_database()
        shutil.rmtree(root, ignore_errors=True)


def test_expectations(results):
    assert results["invariant holds"].passed
    bad = results["invariant broken"]
    assert not bad.passed and not bad.error
    assert bad.message.startswith("returned 2 row(s), expected 0; first: [{'id': 2, 'body': 'two'}")
    assert results["values"].passed, results["values"].message
    assert results["min rows"].message == "returned 3 row(s), expected at least 5"
    assert results["params"].passed and results["flow with sql"].passed, results["flow with sql"].message


def test_read_only_and_errors(results):
    ro = results["read only"]
    assert ro.error and "read-only transaction" in ro.message and "database 'app'" in ro.message
    assert "column \"nope\" does not exist" in results["bad sql"].message
    assert "statement timeout" in results["timeout"].message
