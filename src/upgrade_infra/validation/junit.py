"""JUnit XML for CI systems, written with junitparser: one test suite per check suite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from junitparser import Error, Failure, JUnitXml, TestCase, TestSuite

from upgrade_infra.core.redact import scrub

if TYPE_CHECKING:
    from upgrade_infra.validation.engine import ValidationReport


def build_junit(report: ValidationReport) -> JUnitXml:
    xml = JUnitXml(name=f"upgrade-infra validate {report.env}")
    suites: dict[str, TestSuite] = {}
    for r in report.results:
        suite = suites.get(r.suite)
        if suite is None:
            suite = suites[r.suite] = TestSuite(f"{report.env}.{r.suite}")
            suite.add_property("environment", report.env)
        case = TestCase(r.name, classname=f"{report.env}.{r.suite}", time=r.duration_s)
        if not r.passed:
            res = (Error if r.error else Failure)(scrub(r.message)[:2000], r.kind)
            res.text = scrub(json.dumps(r.details, default=str, indent=1))[:8000]
            case.result = [res]
        case.system_out = scrub(r.message)[:2000]
        suite.add_testcase(case)
    for suite in suites.values():
        suite.update_statistics()
        xml.add_testsuite(suite)
    xml.update_statistics()
    return xml


def write_junit(report: ValidationReport, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    build_junit(report).write(str(path), pretty=True)
    return path
