"""Typed results: attributes to read, ``to_dict()`` exactly the JSON ``--json`` printed when they were
dicts (keys, order, keys only some outcomes carry), a one-line ``verdict``, and the runbook helpers
showing a result as the same table as its document."""

from __future__ import annotations

from upgrade_infra.core.results import Result
from upgrade_infra.docsite import notebook as nb
from upgrade_infra.migration.results import MigrationTestResult
from upgrade_infra.operations.results import (
    QuarantineSummary,
    Recovered,
    RecoveryResult,
    RollbackResult,
    UpgradeResult,
)
from upgrade_infra.staging.results import StagingDestroyed, StagingReady, StagingReset

STEPS = [{"step": "preflight", "start_s": 0.0, "duration_s": 0.1, "status": "ok", "budgeted": True}]


def rollback(**kw) -> RollbackResult:
    args = dict(op="op-2", environment="production", restore_point="rp-1", strategy="clone",
                versions={"assistant": "1.0.0"}, from_versions={"assistant": "1.2.0"}, auto=True, steps=STEPS,
                total_s=2.13, wall_s=3.5, database_step_s=0.04, budget_s=300.0, over_budget=False, verified=True,
                staging_path="spare", quarantine=QuarantineSummary("op-2", 1, [], "assistant__q_op-2"))
    return RollbackResult(**{**args, **kw})


def upgrade(outcome: str = "succeeded", **kw) -> UpgradeResult:
    return UpgradeResult(op="op-1", environment="production", outcome=outcome, restore_point="rp-1",
                         from_versions={"assistant": "1.0.0"}, to_versions={"assistant": "1.1.0"},
                         versions={"assistant": "1.1.0"}, steps=STEPS, downtime_s=4.2, total_s=12.25, **kw)


OLD_UPGRADE_KEYS = ["op", "environment", "outcome", "restore_point", "from_versions", "to_versions", "versions",
                    "steps", "downtime_s", "total_s"]  # upgrade._result before the results were typed


def test_upgrade_keys_and_order_are_the_old_dicts():
    ok = upgrade(notifications=[])
    assert list(ok.to_dict()) == [*OLD_UPGRADE_KEYS, "notifications"]
    rb = rollback(notifications=[])
    failed = upgrade("rolled-back", error="smoke failed", failed_step="smoke", rollback=rb, notifications=[])
    assert list(failed.to_dict()) == [*OLD_UPGRADE_KEYS, "error", "failed_step", "rollback", "notifications"]
    assert failed.to_dict()["rollback"] == rb.to_dict()
    assert list(rb.to_dict()) == ["op", "environment", "restore_point", "strategy", "versions", "from_versions",
                                  "auto", "steps", "total_s", "wall_s", "database_step_s", "budget_s",
                                  "over_budget", "verified", "staging_path", "quarantine", "notifications"]
    assert rb.to_dict()["quarantine"] == {"op": "op-2", "rows_new_total": 1, "tables": [],
                                          "where": "assistant__q_op-2"}


def test_verdicts_are_one_line():
    assert rollback().verdict == "rolled back production to rp-1 in 2.1 s, verified, 1 row quarantined"
    assert rollback(over_budget=True, budget_s=1.0, verified=False).verdict == (
        "rolled back production to rp-1 in 2.1 s, over the 1 s budget, NOT verified, 1 row quarantined")
    assert upgrade().verdict == ("upgraded production to assistant=1.1.0 in 12.2 s (downtime 4.2 s), "
                                 "restore point rp-1")
    failed = upgrade("rolled-back", error="smoke failed", failed_step="smoke", rollback=rollback())
    assert not failed.ok and failed.verdict.startswith("upgrade of production failed at smoke (smoke failed): rolled back")
    assert "\n" not in failed.verdict


def test_scripts_reading_keys_keep_working():
    """Scripts written against the dict results (the docs quote ``rep["verdict"]``) read the same document."""
    failed = upgrade("rolled-back", error="boom", failed_step="smoke", rollback=rollback(), notifications=[])
    assert failed["rollback"]["quarantine"]["rows_new_total"] == 1
    assert "error" in failed and "drill" not in upgrade() and failed.get("nope", 7) == 7
    assert dict(failed) == failed.to_dict()
    rep = MigrationTestResult.from_report({"environment": "stg", "to_versions": {"a": "2"},
                                           "verdict": {"passed": False, "failures": ["x"], "warnings": []},
                                           "migration": {"duration_s": 1.5}, "steps": []})
    assert rep["verdict"] == {"passed": False, "failures": ["x"], "warnings": []}
    assert not rep.passed and rep.failures == ["x"] and rep.migration_s == 1.5
    assert rep.verdict == "migration test on stg to a=2: FAIL, migration 1.5 s; x"
    assert rep.to_dict()["migration"] == {"duration_s": 1.5}


def test_recovery_keeps_what_a_recovery_handler_adds():
    r = RecoveryResult("production", [Recovered("op-1", "rollback", "finished", result=rollback()),
                                      Recovered("op-2", "migrate-test", extra={"action": "reset", "x": 1}),
                                      Recovered("op-3", "upgrade", "undone", undone=[])], {"assistant": "1.0.0"})
    d = r.to_dict()
    assert list(d) == ["environment", "recovered", "versions"]
    assert list(d["recovered"][0]) == ["op", "kind", "action", "result"]
    assert d["recovered"][1] == {"op": "op-2", "kind": "migrate-test", "action": "reset", "x": 1}
    assert d["recovered"][2] == {"op": "op-3", "kind": "upgrade", "action": "undone", "undone": []}


def test_staging_results_name_the_environment_under_the_old_keys():
    ready = StagingReady("created", "stg", source="production", strategy="dump", versions={"a": "1"},
                         ports={"postgres": 1}, total_s=9.0, ready_s=8.0, mb=20.0, copy_s=2.0, mb_per_s=10.0,
                         timeline=STEPS, meta={"status": "ready", "strategy": "dump", "mask": True, "op": "op-1",
                                               "leak_check": {"ok": True}, "restore_point": "rp-1"})
    d = ready.to_dict()
    assert list(d) == ["created", "source", "strategy", "versions", "ports", "total_s", "ready_s", "mb", "copy_s",
                       "mb_per_s", "timeline", "status", "mask", "op", "leak_check", "restore_point"]
    assert d["created"] == "stg" and ready.ok and ready.restore_point == "rp-1"
    assert ready.verdict == ("staging stg created from production: ready in 8.0 s (dump, 20.0 MB at 10.0 MB/s), "
                             "no production value survives")
    assert list(StagingReset("stg", "rp-1", {}, 1.0, 2.0, "op-1", []).to_dict()) == [
        "reset", "restore_point", "versions", "ready_s", "wall_s", "op", "steps"]
    assert StagingDestroyed("stg", ["rp-1"], 1.0).to_dict() == {"destroyed": "stg", "restore_points_deleted": ["rp-1"],
                                                                  "total_s": 1.0}


def test_runbook_tables_show_a_result_as_its_document():
    r = StagingDestroyed("stg", ["rp-1"], 1.0)
    assert nb.table(r, "stage destroy")._repr_html_() == nb.table(r.to_dict(), "stage destroy")._repr_html_()
    rows = [StagingDestroyed("a", [], 1.0), StagingDestroyed("b", [], 2.0)]
    assert nb.table(rows).text == nb.table([x.to_dict() for x in rows]).text
    shown = nb.finish({"destroyed": r, "n": 1})
    assert "Restore points deleted" in shown._repr_html_()


def test_a_result_is_printed_as_its_verdict():
    assert str(rollback()) == rollback().verdict
    assert isinstance(rollback(), Result) and rollback().ok


def test_the_maintenance_runbook_imports_in_a_fresh_interpreter():
    """Regression: ``observe.maintenance`` imported ``restore.ops`` before ``restore.points`` and a fresh
    kernel (the maintenance runbook under ``site publish``) failed on the circular import."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", "import upgrade_infra.observe.maintenance"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
