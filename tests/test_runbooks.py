"""The runbook runner: secrets never reach reports, failures still produce a marked notebook,
large outputs are capped, budgets are enforced, secret-looking parameters are refused."""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest

from upgrade_infra.core import redact
from upgrade_infra.core.errors import BadInput
from upgrade_infra.docsite import runbooks

from .conftest import REPO

DATA = REPO / "tests" / "data" / "runbooks"
SECRET = "pl4nted-s3cret-VALUE-9f2c"


@pytest.fixture
def planted(monkeypatch):
    monkeypatch.setenv("UINFRA_TEST_SECRET", SECRET)
    redact.register(SECRET)


def test_secret_is_scrubbed_everywhere(planted, tmp_path):
    res = runbooks.execute(DATA / "01-ok.ipynb", tmp_path, {"greeting": "hi"})
    assert res.status == "passed", res.error
    assert res.figures["answer"] == 42
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert SECRET not in f.read_text(errors="replace"), f
    text = (tmp_path / "ok.ipynb").read_text()
    assert redact.MASK in text
    nb = nbformat.read(tmp_path / "ok.ipynb", as_version=4)
    assert nb.metadata["upgrade_infra"]["status"] == "passed"
    assert "PASSED" in nb.cells[0].source  # the header says when and how it ran


def test_large_output_is_capped_and_spilled(planted, tmp_path):
    runbooks.execute(DATA / "01-ok.ipynb", tmp_path)
    spilled = list((tmp_path / "ok.outputs").glob("*.txt"))
    assert spilled and len(spilled[0].read_text()) > 20000
    assert "output capped" in (tmp_path / "ok.ipynb").read_text()


def test_failed_runbook_is_marked_and_exits_nonzero(tmp_path):
    res = runbooks.execute(DATA / "02-broken.ipynb", tmp_path)
    assert res.status == "failed" and "the service did not come back" in res.error
    nb = nbformat.read(tmp_path / "broken.ipynb", as_version=4)
    assert "FAILED" in nb.cells[0].source and "did not come back" in nb.cells[0].source
    assert json.loads((tmp_path / "broken.json").read_text())["status"] == "failed"
    r = subprocess.run([sys.executable, "-m", "upgrade_infra", "runbook", "run", "broken", "--dir", str(DATA),
                        "--reports", str(tmp_path / "cli")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and (tmp_path / "cli" / "broken.ipynb").exists()


def test_step_budget_is_enforced(planted, tmp_path):
    res = runbooks.execute(DATA / "01-ok.ipynb", tmp_path, {"sleep_s": 2.5})
    assert res.status == "failed" and "budget 2" in res.error
    assert [s.status for s in res.steps if s.budget_s] == ["over-budget"]


def test_runbook_budget_is_enforced(planted, tmp_path):
    res = runbooks.execute(DATA / "01-ok.ipynb", tmp_path, budget_s=0.5)
    assert res.status == "failed" and "runbook took" in res.error


def test_secret_looking_parameters_are_refused():
    with pytest.raises(BadInput, match="looks like a secret"):
        runbooks.parse_params(["db_password=hunter2"])
    assert runbooks.parse_params(["seed_mb=8", "name=x"]) == {"seed_mb": 8, "name": "x"}


def test_runbooks_are_stored_without_outputs():
    for p in (REPO / "runbooks").glob("*.ipynb"):
        nb = nbformat.read(p, as_version=4)
        assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), p
        assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells), f"{p}: no parameters cell"
