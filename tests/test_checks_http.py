"""The http, workflow, command and performance kinds against a small local HTTP server."""

from __future__ import annotations

from . import checks_support
from .checks_support import run_checks

make_env, tiny_server = checks_support.make_env, checks_support.tiny_server  # fixtures

W = {"service": "web"}


def test_http_assertions(make_env):
    env = make_env([
        {"name": "ok", "kind": "http", **W, "path": "/items", "expect": {
            "status": 200, "json": [{"path": "$[*].id", "min_length": 2}, {"path": "$[0].name", "equals": "one"}],
            "schema": {"type": "array", "items": {"type": "object", "required": ["id", "name"]}},
            "max_latency_ms": 5000}},
        {"name": "wrong status", "kind": "http", **W, "path": "/code/503"},
        {"name": "wrong value", "kind": "http", **W, "path": "/items",
         "expect": {"json": [{"path": "$[0].name", "equals": "uno"}]}},
        {"name": "schema", "kind": "http", **W, "path": "/items", "expect": {"schema": {"type": "object"}}},
        {"name": "too slow", "kind": "http", **W, "path": "/slow?ms=150", "expect": {"max_latency_ms": 20}},
        {"name": "post", "kind": "http", **W, "method": "post", "path": "/echo",
         "headers": {"Authorization": "Bearer {env}"}, "body": {"env": "{env}", "n": 1},
         "expect": {"status": 201, "json": [{"path": "$.got", "equals": {"env": "production", "n": 1}},
                                            {"path": "$.auth", "equals": "Bearer production"}]}},
        {"name": "by url", "kind": "http", "url": "{services.web.url}/healthz", "expect": {"text_contains": "ok"}},
        {"name": "expected 404", "kind": "http", **W, "path": "/nope", "expect": {"status": [404, 410]}},
    ])
    r = run_checks(env)
    assert r["ok"].passed and r["ok"].message.startswith("GET /items -> 200"), r["ok"].message
    assert not r["wrong status"].passed and "returned 503 (expected 2xx)" in r["wrong status"].message
    assert "$[0].name: expected equals uno, got one" in r["wrong value"].message
    assert "response was:" in r["wrong value"].message
    assert "schema: (root):" in r["schema"].message
    assert "> max_latency_ms 20" in r["too slow"].message
    assert r["post"].passed, r["post"].message
    assert r["by url"].passed and r["expected 404"].passed
    assert not r["wrong status"].error and r["wrong status"].details["status"] == 503


def test_unreachable_service_is_named(make_env):
    env = make_env([{"name": "down", "kind": "http", "service": "api", "path": "/x"},
                    {"name": "flow down", "kind": "workflow", "steps": [
                        {"service": "web", "path": "/items"}, {"name": "call api", "service": "api", "path": "/y"}]}],
                   extra_services={"api": {"port": 7, "command": "true", "health": {"http": "/h"},
                                           "versions": {"1": {}}}})
    r = run_checks(env)
    res = r["down"]
    assert not res.passed and res.error
    assert res.message.startswith(f"cannot reach api at http://127.0.0.1:{env.ports['api']}/x: ConnectError")
    flow = r["flow down"]
    assert flow.error and flow.message.startswith("step 2 'call api': cannot reach api at ")


def test_workflow_variables_polling_and_failures(make_env):
    steps = [
        {"name": "start", "method": "POST", "path": "/jobs", "body": {"q": "{env}"}, "expect": {"status": 202},
         "save": {"jid": "$.job_id", "q": "$.input.q"}},
        {"name": "wait", "path": "/jobs/{jid}", "until": [{"path": "$.status", "equals": "done"}],
         "interval_s": 0.02, "expect": {"json": [{"path": "$.id", "equals": "{jid}"}]},
         "save": {"answer": "$.output.answer"}},
        {"name": "reuse", "method": "POST", "path": "/echo", "body": {"a": "{answer}", "s": "job {jid} for {q}"},
         "expect": {"json": [{"path": "$.got.a", "equals": 42}, {"path": "$.got.s", "equals": "job {jid} for {q}"}]}},
    ]
    env = make_env([
        {"name": "flow", "kind": "workflow", **W, "steps": steps},
        {"name": "never done", "kind": "workflow", **W, "timeout_s": 5, "steps": [
            {"name": "poll", "path": "/items", "until": [{"path": "$[0].name", "equals": "zzz"}],
             "timeout_s": 0.3, "interval_s": 0.05}]},
        {"name": "bad save", "kind": "workflow", **W, "steps": [{"path": "/items", "save": {"x": "$[5].id"}}]},
        {"name": "bad step", "kind": "workflow", **W, "steps": [{"path": "/items"}, {"name": "boom",
                                                                                     "path": "/code/500"}]},
    ])
    r = run_checks(env)
    assert r["flow"].passed, r["flow"].message
    polls = r["flow"].details["steps"][1]["polls"]
    assert polls >= 3  # the job is "running" for two polls
    assert r["flow"].details["variables"]["answer"] == 42
    assert "step 1 'poll': not done after" in r["never done"].message and "expected equals zzz" in r["never done"].message
    assert "step 1: cannot save 'x': no value at $[5].id" == r["bad save"].message
    assert r["bad step"].message.startswith("step 2 'boom': GET ") and "returned 500" in r["bad step"].message


def test_command_kind(make_env):
    env = make_env([
        {"name": "env vars", "kind": "command",
         "command": "{python} -c 'import os; print(os.environ[\"UPGRADE_INFRA_WEB_URL\"], os.environ[\"X\"])'",
         "env": {"X": "{env}"}, "expect": {"stdout_contains": "{services.web.url}"[0:0] + "127.0.0.1",
                                            "stdout_matches": "production"}},
        {"name": "exit 3", "kind": "command", "command": "{python} -c 'import sys; sys.exit(3)'"},
        {"name": "allowed exit", "kind": "command", "command": "{python} -c 'import sys; sys.exit(3)'",
         "expect": {"exit_code": [0, 3]}},
        {"name": "missing program", "kind": "command", "command": "/no/such/program"},
    ])
    r = run_checks(env)
    assert r["env vars"].passed, r["env vars"].message
    assert "exited 3 (expected 0)" in r["exit 3"].message
    assert r["allowed exit"].passed
    assert r["missing program"].error and "not found" in r["missing program"].message


def test_performance_kind(make_env):
    env = make_env([
        {"name": "load", "kind": "performance", **W, "path": "/items", "requests": 200, "concurrency": 4,
         "limits": {"p99_ms": 5000}, "baseline": {"p95_ratio": 1.2}},
        {"name": "errors", "kind": "performance", **W, "path": "/code/500", "requests": 20, "concurrency": 2,
         "warmup": 0},
        {"name": "tolerated", "kind": "performance", **W, "path": "/code/404", "requests": 20, "concurrency": 2,
         "expect_status": 404},
    ])
    r = run_checks(env)
    m = r["load"].details["metrics"]
    assert r["load"].passed and m["requests"] == 200 and m["errors"] == 0 and m["p50_ms"] <= m["p99_ms"]
    assert "no baseline for this check" in r["load"].message
    assert len(r["load"].details["cdf_ms"]) == 21
    assert not r["errors"].passed and r["errors"].error and "all 20 requests" in r["errors"].message
    assert r["tolerated"].passed
