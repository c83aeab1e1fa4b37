"""validate(): planning (smoke, suites), isolation of failures, reports (JSON, JUnit), baselines, secrets."""

from __future__ import annotations

import json

import pytest
from junitparser import Error, Failure, JUnitXml

from upgrade_infra.core.errors import BadInput, UnknownName
from upgrade_infra.core.redact import MASK
from upgrade_infra.validation import baseline as bl
from upgrade_infra.validation.checks import KINDS, Kind, KindConfig
from upgrade_infra.validation.engine import validate

from . import checks_support

make_env, tiny_server = checks_support.make_env, checks_support.tiny_server  # fixtures

W = {"service": "web"}
CHECKS = [
    {"name": "items", "kind": "http", "suite": "api", "smoke": True, **W, "path": "/items"},
    {"name": "broken endpoint", "kind": "http", "suite": "api", **W, "path": "/code/500"},
    {"name": "echo", "kind": "http", "suite": "extra", **W, "method": "POST", "path": "/echo", "body": {"a": 1},
     "expect": {"status": 201}},
    {"name": "load", "kind": "performance", "suite": "performance", **W, "path": "/items", "requests": 40,
     "concurrency": 2, "baseline": {"p95_ratio": 1000}},
]


def test_full_run_reports_every_check(make_env, tmp_path):
    env = make_env(CHECKS)
    seen = []
    report = validate(env, report_dir=tmp_path, on_result=lambda r: seen.append(r.name))
    assert [r.name for r in report.results] == ["web health", "items", "broken endpoint", "echo", "load"]
    assert sorted(seen) == sorted(r.name for r in report.results)
    assert not report.passed and [r.name for r in report.failures()] == ["broken endpoint"]
    assert report.counts() == {"passed": 4, "failed": 1, "error": 0}
    health = report.results[0]
    assert health.suite == "health" and health.smoke and health.kind == "http"
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["passed"] is False and data["environment"] == "production" and len(data["results"]) == 5
    assert data["results"][2]["status"] == "failed" and "returned 500" in data["results"][2]["message"]


def test_junit_file_is_accepted_by_a_junit_parser(make_env, tmp_path):
    env = make_env(CHECKS + [{"name": "unreachable", "kind": "http", "suite": "api", "url": "http://127.0.0.1:9/x"}])
    report = validate(env, suites=["api", "health"], report_dir=tmp_path / "r")
    out = report.to_junit(tmp_path / "ci" / "validation.xml")
    xml = JUnitXml.fromfile(str(out))
    suites = {s.name: s for s in xml}
    assert set(suites) == {"production.health", "production.api"}
    api = suites["production.api"]
    assert (api.tests, api.failures, api.errors) == (3, 1, 1)
    cases = {c.name: c for c in api}
    assert isinstance(cases["broken endpoint"].result[0], Failure)
    assert isinstance(cases["unreachable"].result[0], Error)
    assert "cannot reach" in cases["unreachable"].result[0].message
    assert cases["items"].is_passed and cases["items"].classname == "production.api"
    assert (tmp_path / "r" / "junit.xml").exists()


def test_smoke_and_suite_selection(make_env, tmp_path):
    env = make_env(CHECKS)
    smoke = validate(env, smoke_only=True, report_dir=tmp_path / "a")
    assert [r.name for r in smoke.results] == ["web health", "items"] and smoke.passed
    extra = validate(env, suites=["extra"], report_dir=tmp_path / "b")
    assert [r.name for r in extra.results] == ["echo"]
    with pytest.raises(UnknownName, match="no checks in suite\\(s\\) nope") as ei:
        validate(env, suites=["nope"], report_dir=tmp_path / "c")
    assert "api" in ei.value.fix


def test_a_crashing_check_does_not_stop_the_others(make_env, tmp_path, monkeypatch):
    def explode(spec, cfg, ctx):
        raise RuntimeError("kaboom")

    monkeypatch.setitem(KINDS, "explode", Kind("explode", KindConfig, explode))
    env = make_env([{"name": "boom", "kind": "explode", "suite": "api"}] + CHECKS[:1])
    report = validate(env, report_dir=tmp_path)
    boom = next(r for r in report.results if r.name == "boom")
    assert boom.error and boom.message == "check crashed: RuntimeError: kaboom"
    assert next(r for r in report.results if r.name == "items").passed


def test_secrets_are_scrubbed_from_results(make_env, tmp_path):
    env = make_env([{"name": "leaky", "kind": "http", **W, "method": "POST", "path": "/echo",
                     "body": {"t": "{secrets.token}"}, "expect": {"json": [{"path": "$.got.t", "equals": "x"}]}}],
                   secrets={"token": {"generate": True}})
    report = validate(env, report_dir=tmp_path)
    secret = env.secrets()["token"]
    leaky = report.results[-1]
    assert not leaky.passed and MASK in leaky.message and secret not in leaky.message
    for name in ("results.json", "junit.xml"):
        assert secret not in (tmp_path / name).read_text()


def test_baselines_record_resolve_and_compare(make_env, tmp_path):
    env = make_env([CHECKS[0], CHECKS[3]])
    first = validate(env, report_dir=tmp_path / "1")
    assert first.baseline is None and "no baseline" in first.results[-1].message
    path = bl.record_baseline(env, first)
    assert path == env.state.root / "baselines" / "production.json"
    saved = bl.load_env(env.state, "production")
    assert saved.checks["load"]["p95_ms"] == first.results[-1].details["metrics"]["p95_ms"]
    second = validate(env, report_dir=tmp_path / "2")  # default: the environment's own baseline
    assert second.baseline.startswith("production (") and second.passed
    assert "vs baseline" in second.results[-1].message
    copy = bl.save(saved, tmp_path / "b.json")
    assert validate(env, baseline=copy, report_dir=tmp_path / "3").baseline == saved.label
    assert validate(env, baseline="production", report_dir=tmp_path / "4").passed
    with pytest.raises(BadInput, match="no baseline recorded for environment 'staging'"):
        validate(env, baseline="staging", report_dir=tmp_path / "5")
    (tmp_path / "junk.json").write_text("[1]")
    with pytest.raises(BadInput, match="is not a baseline file"):
        validate(env, baseline=tmp_path / "junk.json", report_dir=tmp_path / "6")


def test_failing_run_is_not_recorded_as_baseline(make_env, tmp_path):
    env = make_env(CHECKS[:2])
    report = validate(env, report_dir=tmp_path)
    with pytest.raises(BadInput, match="not recording a baseline from a failing run \\(broken endpoint\\)"):
        bl.record_baseline(env, report)


def test_strict_relative_limit_fails_against_baseline(make_env, tmp_path):
    env = make_env([dict(CHECKS[3], baseline={"p50_ratio": 0.001})])
    fast = bl.Baseline("production", 0, {}, {"load": {"p50_ms": 0.01, "p95_ms": 0.01, "rps": 1e6}})
    report = validate(env, baseline=fast, suites=["performance"], report_dir=tmp_path)
    assert not report.passed and "vs baseline 0.0 ms" in report.results[0].message


def test_default_report_dirs_are_pruned(make_env):
    env = make_env(CHECKS[:1])
    dirs = [validate(env, smoke_only=True).report_dir for _ in range(4)]
    assert len(set(dirs)) == 4 and all(d.parent == env.state.root / "reports" / "validation" for d in dirs)
    from upgrade_infra.validation.engine import default_report_dir

    default_report_dir(env, keep=2)
    assert sorted(p.name for p in dirs[0].parent.iterdir()) == sorted(d.name for d in dirs[-1:])


def test_report_dirs_follow_the_retention_policy_per_environment(tmp_path):
    """Validation report dirs are pruned by policies.retention (reports_keep_last, max_age_days), per
    environment: pruning ``staging`` no longer deletes the reports of ``staging-2``."""
    import os
    import time as _time

    from upgrade_infra.core.state import StateDir
    from upgrade_infra.stack.manifest import Retention
    from upgrade_infra.validation.engine import prune_reports, report_dirs

    st = StateDir(tmp_path)
    root = tmp_path / "reports" / "validation"
    now = _time.time()
    for env in ("staging", "staging-2"):
        for i in range(6):
            d = root / f"{env}-2026113{i}-120000.000"
            d.mkdir(parents=True)
            os.utime(d, (now - (6 - i) * 86400, now - (6 - i) * 86400))
    pol = Retention(keep_last=5, max_age_days=14, quarantine_days=7, reports_keep_last=4)
    assert prune_reports(st, "staging", pol, dry_run=True) == ["staging-20261131-120000.000",
                                                               "staging-20261130-120000.000"]
    gone = prune_reports(st, "staging", pol)
    assert len(gone) == 2 and len(report_dirs(st, "staging")) == 4
    assert len(report_dirs(st, "staging-2")) == 6  # another environment's reports are not touched
    aged = Retention(keep_last=5, max_age_days=2.5, quarantine_days=7, reports_keep_last=30)
    assert prune_reports(st, "staging-2", aged) and [d.name for d in report_dirs(st, "staging-2")] == [
        "staging-2-20261135-120000.000", "staging-2-20261134-120000.000"]
