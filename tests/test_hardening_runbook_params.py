"""Runbook parameters (issue 11, item 8): `runbook run -p` is checked against the notebook's parameters
cell before anything runs: an empty or unknown name, or a value of the wrong type, is exit 2 naming the
parameter (and its type); nothing is executed and no report is written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from upgrade_infra.core.errors import BadInput
from upgrade_infra.docsite import runbooks

from .conftest import REPO

PARAMS = 'seed_mb: float = None  # MB\ncount: int = 3\nlabel = "x"\nflag = False\nratio = 0.5\nanything = None\n'


@pytest.fixture
def book(tmp_path) -> Path:
    """A runbook whose only effect is a marker file: if it exists, the notebook ran."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nb.metadata["language_info"] = {"name": "python"}
    params = nbformat.v4.new_code_cell(PARAMS)
    params.metadata["tags"] = ["parameters"]
    run = nbformat.v4.new_code_cell("open('ran.marker', 'w').write(repr((seed_mb, count, label, flag, ratio)))")
    nb.cells = [params, run]
    d = tmp_path / "books"
    d.mkdir()
    nbformat.write(nb, d / "01-demo.ipynb")
    return d / "01-demo.ipynb"


def run(book: Path, *params: str, json_out: bool = False) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "upgrade_infra", *(["--json"] if json_out else []), "runbook", "run", "demo",
            "--dir", str(book.parent), "--reports", str(book.parent.parent / "reports")]
    for p in params:
        argv += ["-p", p]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=book.parent.parent)


@pytest.mark.parametrize("param, words", [
    ("=5", ["'' is not a parameter name"]),
    ("nosuch=1", ["no parameter 'nosuch'", "seed_mb (float)", "count (int)"]),
    ("seed_mb=abc", ["seed_mb is a float parameter", "'abc' is not a float"]),
    ("count=2.5", ["count is a int parameter"]),
    ("flag=maybe", ["flag is a bool parameter"]),
    ("ratio=[1]", ["ratio is a number parameter"]),
])
def test_bad_parameters_exit_2_and_nothing_runs(book, param, words):
    r = run(book, param)
    assert r.returncode == 2, r.stdout + r.stderr
    for w in words:
        assert w in r.stderr, r.stderr
    assert "fix:" in r.stderr
    assert not (book.parent / "ran.marker").exists() and not (book.parent.parent / "reports").exists()


def test_bad_parameter_with_json_is_one_document(book):
    r = run(book, "seed_mb=abc", json_out=True)
    doc = json.loads(r.stdout)
    assert r.returncode == 2 and doc["parameter"] == "seed_mb" and doc["type"] == "float"


def test_good_parameters_are_typed(book):
    got = runbooks.check_params(book, ["seed_mb=8", "count=4", "label=1.1.0", "flag=true", "ratio=2",
                                       "anything=[1, 2]", "seed_mb=null"])
    assert got == {"seed_mb": None, "count": 4, "label": "1.1.0", "flag": True, "ratio": 2, "anything": [1, 2]}
    assert runbooks.check_params(book, ['label="quoted"', "seed_mb=8.5"]) == {"label": "quoted", "seed_mb": 8.5}
    assert runbooks.check_params(book, ["label=5"]) == {"label": "5"}  # a str parameter keeps the text


def test_reference_runbooks_declare_seed_mb_as_float():
    path = REPO / "runbooks" / "01-production.ipynb"
    assert runbooks.declared_params(path)["seed_mb"] == "float"
    with pytest.raises(BadInput, match="seed_mb is a float parameter"):
        runbooks.check_params(path, ["seed_mb=abc"])
