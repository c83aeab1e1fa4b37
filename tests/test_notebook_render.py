"""Runbook output made for readers: notebook.table / notebook.finish render HTML tables with human
column names, readable values, no bookkeeping rows and no machine paths; the rollback timeline is
zoomed to its steps."""

from __future__ import annotations

import matplotlib

from upgrade_infra.docsite import notebook as nb
from upgrade_infra.docsite import rollback_charts
from upgrade_infra.operations.results import QuarantineSummary, RollbackResult, UpgradeResult

matplotlib.use("Agg")


def upgrade_result(steps: list[dict], rollback_steps: list[dict], *, total_s: float,
                   budget_s: float = 300.0) -> UpgradeResult:
    """An upgrade that was rolled back, with only the figures the chart reads filled in."""
    rb = RollbackResult(op="op-2", environment="production", restore_point="rp-1", strategy="clone",
                        versions={}, from_versions={}, auto=True, steps=rollback_steps, total_s=total_s, wall_s=total_s,
                        database_step_s=0.05, budget_s=budget_s, over_budget=False, verified=True, staging_path=None,
                        quarantine=QuarantineSummary("op-2"))
    return UpgradeResult(op="op-1", environment="production", outcome="rolled-back", restore_point="rp-1",
                         from_versions={}, to_versions={}, versions={}, steps=steps, downtime_s=None, total_s=10.0,
                         error="smoke failed", failed_step="smoke", rollback=rb)


def test_finish_renders_a_table_not_an_ipython_object():
    shown = nb.finish({"rollback": {"total_s": 4.25, "verified": True, "budget_s": 300},
                       "versions": {"assistant": "1.0.0", "automations": "1.0.0"}})
    assert "IPython.core.display" not in repr(shown)
    html = shown._repr_html_()
    assert "<table" in html and "Total (s)" in html and "✔ yes" in html
    assert "assistant 1.0.0, automations 1.0.0" in html
    assert "{" not in html  # no raw dict


def test_table_columns_values_and_bookkeeping_rows():
    rows = [{"database": "assistant", "table": "alembic_version", "rows_new": 1, "rows_gone": 1},
            {"database": "assistant", "table": "messages", "rows_new": 18, "rows_gone": 0, "ok": False}]
    html = nb.table(rows, "quarantine op-1: 18 rows, in /tmp/x/state/quarantine/production/op-1")._repr_html_()
    assert "alembic_version" not in html and "messages" in html
    assert "New rows" in html and "✘ no" in html
    assert "/tmp/x" not in html and "…/quarantine/production/op-1" in html


def test_human_column_names():
    assert nb.human("duration_s") == "Duration (s)"
    assert nb.human("p95_ms") == "p95 (ms)"
    assert nb.human("copy_mb_per_s") == "Copy (MB/s)"
    assert nb.human("database_step_s") == "Database step (s)"
    assert nb.human("smoke passed") == "Smoke passed"


def test_machine_paths_are_shortened_but_urls_kept():
    text = "psql -h /work/wt/x/.upgrade-infra/envs/production/run -d x; see http://127.0.0.1:25401/api/agents"
    out = nb.short_path(text)
    assert "/work/" not in out and "…/envs/production/run" in out and "http://127.0.0.1:25401/api/agents" in out


def test_timeline_is_zoomed_to_the_steps():
    res = upgrade_result(
        [{"step": "preflight", "start_s": 0.0, "duration_s": 0.1, "status": "ok"},
         {"step": "smoke", "start_s": 0.1, "duration_s": 2.0, "status": "failed"}],
        [{"step": "swap_databases", "start_s": 0.0, "duration_s": 0.05, "status": "ok"},
         {"step": "start_services", "start_s": 0.05, "duration_s": 3.9, "status": "ok"}], total_s=4.0)
    fig = rollback_charts.timeline(res, "1.2.0")
    lo, hi = fig.axes[0].get_xlim()
    assert lo == 0 and 6.0 < hi < 10.0  # the steps end at 6.05 s: not a 300 s axis
    assert "% of the 300 s budget" in fig.axes[0].get_title()


def test_captions_turn_python_dicts_into_words():
    html = nb.table([{"x": 1}], "validate production: {'passed': 15, 'failed': 0, 'error': 0} in 5.5s; kept in "
                                "{'assistant': 'assistant__q_1'}")._repr_html_()
    assert "15 passed, 0 failed, 0 error in 5.5s" in html and "kept in assistant assistant__q_1" in html
    assert "{" not in html


def test_long_commands_are_folded():
    cmd = ("/usr/lib/postgresql/15/bin/psql 'host=/srv/x/.upgrade-infra/envs/production/pg/run port=25400 "
           "user=postgres dbname=assistant__q_1' -v ON_ERROR_STOP=1 -c 'SELECT 1'")
    html = nb.table([{"table": "messages", "rows_new": 2, "export": cmd}])._repr_html_()
    assert "<details" in html and "<summary>psql command</summary>" in html and "/srv/" not in html
