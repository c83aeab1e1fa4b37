"""Checks that leave production clean (issue 11): the reference stack's checks that write
(conversations, messages, executions) remove what they wrote, also when they fail half-way."""

from __future__ import annotations

from upgrade_infra.core import sql
from upgrade_infra.stack.manifest import CheckSpec
from upgrade_infra.validation.checks import CheckContext
from upgrade_infra.validation.engine import run_check, validate

COUNTS = {"assistant": ["conversations", "messages"], "automations": ["executions"]}


def _counts(env) -> dict[str, int]:
    return {f"{db}.{t}": sql.fetch_value(env.conninfo(db), f"SELECT count(*) FROM {t}", read_only=True)
            for db, tables in COUNTS.items() for t in tables}


def test_writing_checks_clean_up_after_themselves(pa_production, tmp_path):
    prod = pa_production.env("production")
    before = _counts(prod)
    report = validate(prod, ["api", "workflow"], report_dir=tmp_path / "r")
    assert report.passed, [r.message for r in report.failures()]
    assert _counts(prod) == before  # before the fix: +3 conversations, +8 messages, +1 execution
    cleaned = [r for r in report.results if r.details.get("cleanup")]
    assert {r.name for r in cleaned} == {"assistant answers a message", "webhook automation stores the assistant's answer",
                                        "conversation recalls memory written before the upgrade"}
    assert all("rows" in step for r in cleaned for step in r.details["cleanup"])
    smoke = validate(prod, smoke_only=True, report_dir=tmp_path / "s")  # what the watch window runs
    assert smoke.passed
    assert _counts(prod) == before  # nothing left behind


def test_cleanup_runs_when_the_check_fails_half_way(pa_production, tmp_path):
    prod = pa_production.env("production")
    before = _counts(prod)
    spec = CheckSpec.model_validate({
        "name": "fails after writing", "kind": "workflow", "service": "assistant", "steps": [
            {"path": "/api/agents?limit=1", "save": {"agent_id": "$[0].id"}},
            {"method": "POST", "path": "/api/conversations", "body": {"agent_id": "{agent_id}", "title": "t"},
             "save": {"conversation_id": "$.id"}},
            {"path": "/api/conversations/{conversation_id}", "expect": {"status": 418}},
            {"path": "/never/reached", "save": {"other": "$.id"}}],
        "cleanup": [
            {"sql": {"database": "assistant", "query": "DELETE FROM conversations WHERE id = %(id)s",
                     "params": {"id": "{conversation_id}"}}},
            {"sql": {"database": "assistant", "query": "DELETE FROM conversations WHERE id = %(id)s",
                     "params": {"id": "{other}"}}}]})
    res = run_check(spec, CheckContext.for_env(prod, tmp_path))
    assert not res.passed and "418" in res.message
    steps = res.details["cleanup"]
    assert steps[0]["rows"] == 0 and "never saved: other" in steps[1]["skipped"]
    assert _counts(prod) == before
