"""Pure parts of the check kinds: JSON assertions, variable binding, percentiles, judging, argv."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from upgrade_infra.validation.checks.assertions import JsonAssert, compile_path, evaluate, extract
from upgrade_infra.validation.checks.performance import Limits, Relative, judge, percentile, summarize
from upgrade_infra.validation.checks.pytest_suite import pytest_argv
from upgrade_infra.validation.checks.workflow import bind_value

DATA = {"status": "success", "items": [{"id": 1, "tags": ["a"]}, {"id": 2, "tags": []}], "n": 3,
        "reply": "Ada here. I remember: coffee: oat flat white.", "none": None, "flag": True}


@pytest.mark.parametrize("spec, ok", [
    ({"path": "$.status", "equals": "success"}, True),
    ({"path": "$.status", "equals": "error"}, False),
    ({"path": "$.status", "not_equals": "running"}, True),
    ({"path": "$.reply", "contains": "coffee"}, True),
    ({"path": "$.reply", "not_contains": "birthday"}, True),
    ({"path": "$.items[0].tags", "contains": "a"}, True),
    ({"path": "$.reply", "matches": r"I remember: \w+"}, True),
    ({"path": "$.missing", "exists": False}, True),
    ({"path": "$.status", "exists": True}, True),
    ({"path": "$.none", "exists": True}, True),
    ({"path": "$.status", "one_of": ["success", "error"]}, True),
    ({"path": "$.items", "min_length": 2}, True),
    ({"path": "$.items", "max_length": 1}, False),
    ({"path": "$.items[*].id", "min_length": 2}, True),
    ({"path": "$.n", "gt": 2}, True),
    ({"path": "$.n", "lte": 2}, False),
    ({"path": "$.status", "gt": 2}, False),
    ({"path": "$.n", "type": "integer"}, True),
    ({"path": "$.flag", "type": "integer"}, False),
    ({"path": "$.items", "type": "array"}, True),
    ({"path": "$.none", "type": "null"}, True),
])
def test_operators(spec, ok):
    assert (evaluate(JsonAssert.model_validate(spec), DATA) is None) is ok


def test_problem_names_path_and_values():
    problem = evaluate(JsonAssert(path="$.status", equals="error"), DATA)
    assert problem == "$.status: expected equals error, got success"
    assert "no value" in evaluate(JsonAssert(path="$.nope", equals=1), DATA)


@pytest.mark.parametrize("bad", [
    {"path": "$..[", "equals": 1},          # invalid JSON path
    {"path": "$.a"},                        # no operator
    {"path": "$.a", "equals": 1, "gt": 0},  # two operators
    {"path": "$.a", "matches": "("},        # bad regex
    {"path": "$.a", "type": "float"},       # unknown type
    {"path": "$.a", "eq": 1},               # unknown field
])
def test_invalid_assertions_rejected(bad):
    with pytest.raises(ValidationError):
        JsonAssert.model_validate(bad)


def test_compile_and_extract():
    with pytest.raises(ValueError, match="invalid JSON path"):
        compile_path("$[")
    assert extract(DATA, "$.items[1].id") == 2
    assert extract(DATA, "$.items[*].id") == [1, 2]
    with pytest.raises(KeyError):
        extract(DATA, "$.nothing")


def test_bind_value():
    v = {"key": "coffee", "id": 7}
    assert bind_value("{id}", v) == 7
    assert bind_value("about {key}", v) == "about coffee"
    assert bind_value("^\\*{4}", v) == "^\\*{4}"       # regex braces untouched
    assert bind_value("{other}", v) == "{other}"       # unknown names stay literal
    assert bind_value(3, v) == 3


def test_percentiles_and_summary():
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 50) == 50 and percentile(values, 95) == 95 and percentile(values, 100) == 100
    assert percentile(values, 0) == 1
    assert math.isnan(percentile([], 50))
    m = summarize([x / 1000 for x in values], errors=0, wall_s=2.0, concurrency=4)
    assert m["requests"] == 100 and m["p99_ms"] == 99 and m["rps"] == 50 and m["error_rate"] == 0


def test_judge_absolute_and_relative():
    m = {"requests": 200, "errors": 2, "error_rate": 0.01, "p50_ms": 10.0, "p95_ms": 30.0, "p99_ms": 50.0,
         "rps": 100.0}
    bad, _ = judge(m, Limits(p95_ms=25, max_error_rate=0.0), Relative(), None)
    assert any("p95 30.0 ms > limit 25" in b for b in bad) and any("error rate 1.0%" in b for b in bad)
    bad, notes = judge(m, Limits(max_error_rate=0.05), Relative(p95_ratio=1.2), None)
    assert not bad and "no baseline" in notes[0]
    bad, _ = judge(m, Limits(max_error_rate=0.05), Relative(p95_ratio=1.2), {"p95_ms": 20.0, "rps": 100})
    assert bad == ["p95 30.0 ms vs baseline 20.0 ms (x1.50, allowed x1.2)"]
    bad, notes = judge(m, Limits(max_error_rate=0.05), Relative(p95_ratio=1.2, slack_ms=10), {"p95_ms": 20.0})
    assert not bad and "allowed x1.2 + 10 ms" in notes[0]
    bad, _ = judge(m, Limits(max_error_rate=0.05), Relative(min_rps_ratio=0.8), {"rps": 200.0})
    assert "throughput 100 req/s vs baseline 200" in bad[0]


def test_pytest_argv(tmp_path):
    argv = pytest_argv("/py", "tests/stack", tmp_path / "r.xml", ["-k", "smoke"])
    assert argv == ["/py", "-m", "pytest", "tests/stack", f"--junitxml={tmp_path / 'r.xml'}", "-q", "-p",
                    "no:cacheprovider", "-k", "smoke"]
