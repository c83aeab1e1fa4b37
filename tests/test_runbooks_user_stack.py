"""Runbooks on a user's own stack: shipped with the package, found from any directory, "failed" unless
their result is verified, and the rollback drill on a disposable copy of production by default."""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest

from upgrade_infra.core.errors import RefusedToTouchProduction
from upgrade_infra.core.journal import Journal
from upgrade_infra.docsite import drill, runbooks
from upgrade_infra.operations.session import Session

from .conftest import REPO, stop_all, write_stack

LEDGER = REPO / "tests" / "data" / "ledger" / "stack.yaml"


def test_runbook_list_works_from_any_directory(tmp_path):
    r = subprocess.run([sys.executable, "-m", "upgrade_infra", "--json", "runbook", "list"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    names = [x["name"] for x in json.loads(r.stdout)]
    assert names[:2] == ["production", "staging"] and "rollback" in names
    assert runbooks.find_runbook(runbooks.default_dir(tmp_path), "rollback").name == "06-rollback.ipynb"


def test_runbooks_are_package_data():
    text = (REPO / "pyproject.toml").read_text()
    assert '"share/upgrade-infra/runbooks" = ["runbooks/*.ipynb"]' in text


def test_unverified_result_fails_the_run(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("from upgrade_infra.docsite import notebook as nb\n"
                                          "nb.finish({'rollback': {'verified': False, 'total_s': 1.0}})")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "01-unverified.ipynb"
    nbformat.write(nb, path)
    res = runbooks.execute(path, tmp_path / "reports")
    assert res.status == "failed"
    assert "rollback.verified" in res.error
    assert runbooks.unverified_results({"a": {"verified": True}, "b": [1], "passed": 3}) == []


@pytest.fixture
def ledger(private_tmp):
    s = Session(write_stack(private_tmp / "stack", LEDGER), private_tmp / "state")
    yield s
    stop_all(s)


def test_drill_runs_on_a_disposable_copy_and_simulates_the_broken_release(ledger):
    s = ledger
    copy = drill.target(s)  # brings production up (seeded) first
    prod = s.env("production")
    prod_versions = dict(prod.record.versions)
    assert copy.name == drill.DRILL_ENV and copy.kind == "staging"
    p = drill.plan(copy, "no-such-release")  # the ledger stack has no such release: the failure is injected
    assert p["simulated"] and p["to"] == {"ledger": "2.0"}
    res = drill.run(copy, "no-such-release")
    assert res["outcome"] == "rolled-back" and res["failed_step"] == "smoke"
    assert res["rollback"]["verified"] and copy.record.versions == prod_versions
    assert s.env("production").record.versions == prod_versions  # production never touched
    assert not [o for o in Journal(s.state, "production").operations() if o.kind in ("upgrade", "rollback")]
    left = Journal(s.state, drill.DRILL_ENV).operations()[0].op
    copy = drill.target(s)  # a copy left behind (an interrupted drill) is replaced by a fresh one
    assert copy.kind == "staging" and Journal(s.state, drill.DRILL_ENV).operations()[-1].op != left
    assert drill.discard(s) and not s.state.load_record(drill.DRILL_ENV)
    assert not drill.discard(s)  # nothing left to discard
    with pytest.raises(RefusedToTouchProduction):
        drill.discard(s, "production")  # staging's discard: never anything but a staging environment
    assert drill.plan(prod, "broken") == {"to": {"ledger": "broken"}, "broken": "release broken", "simulated": False}
    with pytest.raises(Exception, match="drill target"):
        drill.target(s, "prod")
