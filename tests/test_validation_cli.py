"""``upgrade-infra validate`` and ``api-diff`` on the command line: exit codes, JSON, JUnit, baselines."""

from __future__ import annotations

import json

from upgrade_infra.cli import main

from . import checks_support
from .test_validation_openapi import BASE, changed

make_env, tiny_server = checks_support.make_env, checks_support.tiny_server  # fixtures

OK = {"name": "items", "kind": "http", "suite": "api", "smoke": True, "service": "web", "path": "/items"}
BAD = {"name": "broken", "kind": "http", "suite": "api", "service": "web", "path": "/code/500"}


def cli(env, *args: str) -> int:
    return main(["--stack", str(env.manifest.path), "--state-dir", str(env.state.root), *args])


def test_validate_passes_records_baseline_and_writes_junit(make_env, tmp_path, capsys):
    env = make_env([OK])
    code = cli(env, "validate", "production", "--record-baseline", "--junit", str(tmp_path / "j.xml"),
               "--report-dir", str(tmp_path / "r"))
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "all checks passed" in out.out and "baseline recorded" in out.out
    assert "pass api" in out.err  # live progress
    assert (tmp_path / "j.xml").exists() and (tmp_path / "r" / "results.json").exists()
    assert (env.state.root / "baselines" / "production.json").exists()


def test_validate_failure_exit_1_and_json(make_env, tmp_path, capsys):
    env = make_env([OK, BAD])
    code = cli(env, "--json", "validate", "production", "--suite", "api", "--report-dir", str(tmp_path))
    out = capsys.readouterr()
    assert code == 1
    data = json.loads(out.out.split("\n{\"error\"")[0])
    assert data["counts"] == {"passed": 1, "failed": 1, "error": 0}
    assert "1 check(s) failed in production: broken" in out.err


def test_validate_bad_input_exit_2(make_env, capsys):
    env = make_env([OK])
    assert cli(env, "validate", "production", "--suite", "nope") == 2
    assert "no checks in suite(s) nope" in capsys.readouterr().err
    assert cli(env, "validate", "production", "--baseline", "staging") == 2


def test_api_diff_from_files(make_env, tmp_path, capsys):
    env = make_env([OK])
    cur, cand = tmp_path / "cur.json", tmp_path / "cand.json"
    cur.write_text(json.dumps(BASE))
    cand.write_text(json.dumps(changed(lambda d: d["paths"].pop("/api/users/{user_id}"))))
    code = cli(env, "api-diff", "web", "--current-file", str(cur), "--candidate-file", str(cand))
    out = capsys.readouterr()
    assert code == 1 and "BREAKING /api/users/{user_id}: path removed" in out.out
    assert cli(env, "api-diff", "web", "--current-file", str(cur), "--candidate-file", str(cur)) == 0
    assert cli(env, "api-diff", "web", "--current-file", str(cur)) == 2  # no candidate
