"""The reference stack's full check set: production passes; release 1.2.0 in staging fails
exactly the checks that exercise its bug, with messages that say why; JUnit and screenshot in the report."""

from __future__ import annotations

from pathlib import Path

import pytest
from junitparser import JUnitXml

from upgrade_infra.staging import lifecycle as staging
from upgrade_infra.validation.baseline import record_baseline
from upgrade_infra.validation.engine import validate
from upgrade_infra.validation.openapi_diff import compare

BUGGY = "1.2.0"
MUST_FAIL = {"assistant answers a message", "conversation recalls memory written before the upgrade",
             "webhook automation stores the assistant's answer"}


@pytest.fixture(scope="module")
def production_report(pa_production, tmp_path_factory):
    env = pa_production.env("production")
    report = validate(env, report_dir=tmp_path_factory.mktemp("prod-report"))
    record_baseline(env, report)
    return report


@pytest.fixture(scope="module")
def staging_120(pa_production):
    """Release 1.2.0 in staging: a masked copy of production's data, services started at 1.2.0
    (they migrate their schema on start)."""
    s = pa_production
    staging.create(s, "stage-120", versions={svc: BUGGY for svc in s.manifest.services})
    yield s.env("stage-120")
    staging.destroy(s, "stage-120")


def test_production_passes_the_full_suite(production_report):
    r = production_report
    failed = [(x.name, x.message) for x in r.failures()]
    assert r.passed, failed
    suites = {x.suite for x in r.results}
    assert suites == {"health", "api", "workflow", "integration", "performance", "ux"}
    perf = next(x for x in r.results if x.kind == "performance")
    assert perf.details["metrics"]["requests"] >= 200
    print(f"\nfull reference suite: {len(r.results)} checks in {r.duration_s:.1f}s")


def test_report_has_junit_and_screenshot(production_report):
    d = production_report.report_dir
    xml = JUnitXml.fromfile(str(d / "junit.xml"))
    assert sum(s.tests for s in xml) == len(production_report.results)
    assert sum(s.failures + s.errors for s in xml) == 0
    shot = Path(next(x for x in production_report.results if x.kind == "browser").details["screenshot"])
    assert shot.parent == d / "screenshots" and shot.read_bytes()[:4] == b"\x89PNG"


def test_release_120_fails_the_right_checks(production_report, staging_120, tmp_path):
    r = validate(staging_120, baseline="production", report_dir=tmp_path)
    failed = {x.name: x for x in r.failures()}
    assert set(failed) == MUST_FAIL, {k: v.message for k, v in failed.items()}
    assert r.baseline.startswith("production (")
    msg = failed["assistant answers a message"].message
    assert msg.startswith("step 3 'post a message': POST ") and "returned 500 (expected 201)" in msg
    assert 'column \\"body\\" does not exist' in msg
    wf = failed["webhook automation stores the assistant's answer"].message
    assert "$.status: expected equals success, got error" in wf and "assistant returned 500" in wf
    assert all(not x.error for x in failed.values())  # the services answered: assertion failures


def test_api_diff_between_running_versions(pa_production, staging_120):
    d = compare(pa_production.env("production"), "assistant", candidate_env=staging_120)
    assert d.compatible, [str(c) for c in d.breaking]
    assert d.current.startswith("production (assistant 1.0.0)") and "1.2.0" in d.candidate
