"""The pytest kind: a user's suite in a subprocess, the environment handed in, the result from JUnit XML."""

from __future__ import annotations

import textwrap

from . import checks_support
from .checks_support import run_checks

make_env, tiny_server = checks_support.make_env, checks_support.tiny_server  # fixtures

USER_TESTS = '''
import os, urllib.request

def test_env_is_handed_in():
    assert os.environ["UPGRADE_INFRA_ENV"] == "production"
    assert os.environ["UPGRADE_INFRA_DB_APP_URL"].startswith("postgresql://app:")

def test_service_answers():
    with urllib.request.urlopen(os.environ["UPGRADE_INFRA_WEB_URL"] + "/healthz") as r:
        assert r.status == 200

def test_marker():
    assert os.environ.get("WANT") != "fail", "asked to fail"
'''


def test_user_suite_passes_and_fails(make_env, tmp_path):
    d = tmp_path / "stacktests"
    d.mkdir()
    (d / "test_stack.py").write_text(textwrap.dedent(USER_TESTS))
    env = make_env([
        {"name": "user suite", "kind": "pytest", "path": str(d), "timeout_s": 120},
        {"name": "user suite failing", "kind": "pytest", "path": str(d), "env": {"WANT": "fail"}},
        {"name": "nothing collected", "kind": "pytest", "path": str(d), "args": ["-k", "no_such_test"]},
    ])
    r = run_checks(env, tmp_path / "report")
    ok = r["user suite"]
    assert ok.passed, ok.message
    assert ok.message == "3 test(s) passed (0 skipped)" and ok.details["counts"]["tests"] == 3
    bad = r["user suite failing"]
    assert not bad.passed and bad.message.startswith("1 of 3 test(s) failed: ")
    assert "test_marker" in bad.message and "asked to fail" in bad.message
    assert r["nothing collected"].message == f"no tests collected from {d}"
    assert (tmp_path / "report" / "pytest" / "user-suite.xml").exists()
