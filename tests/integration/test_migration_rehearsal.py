"""`migrate test` end to end on the reference stack: a staging env synced from production, real services,
real migrations. The good release passes, the lossy one fails naming table/column/rows, the locking one
fails naming the lock; a hang and a crash are reported and staging is reset; production is refused."""

from __future__ import annotations

import json
import os
import sys

import pytest

from upgrade_infra.cli import main
from upgrade_infra.core import runner
from upgrade_infra.core.errors import RefusedToTouchProduction
from upgrade_infra.core.journal import Journal
from upgrade_infra.migration import crossmajor, rehearsal
from upgrade_infra.restore.fingerprint import fingerprint
from upgrade_infra.stack.manifest import VersionSpec
from upgrade_infra.staging import lifecycle as staging

BOTH = ("assistant", "automations")
QUICK = ("downgrade", "validate", "compatibility")


def to(version: str) -> dict[str, str]:
    return dict.fromkeys(BOTH, version)


@pytest.fixture(scope="module")
def stg(pa_production):
    staging.create(pa_production, "stg")
    return pa_production


def _reset_exactly(s, before) -> None:
    env = s.env("stg")
    assert env.record.versions == to("1.0.0")
    # the restore is proven exact before services start (report); then the smoke checks add a conversation
    written_by_smoke = {"conversations", "messages"}
    assert [d for d in before.diff(fingerprint(env)) if d.table not in written_by_smoke] == []
    assert not [o for o in env.state.root.glob("quarantine/*")]


def test_good_release_passes_with_every_step(stg):
    rep = rehearsal.rehearse(stg, "stg", to("1.1.0"))
    assert rep["verdict"]["passed"], rep["verdict"]
    assert rep["migration"]["status"] == "ok" and rep["migration"]["mode"] == "start"
    assert rep["locks"]["samples"] > 5 and rep["wal_bytes"] > 0
    assert rep["new_tables"] == ["assistant.memory_tags"]
    content = {t["table"]: t["content"] for t in rep["integrity"]["tables"]}
    assert content["users"] == content["executions"] == "not hashed" and content["agents"] == "same"
    assert rep["validation"]["passed"]
    assert rep["reversibility"]["restore_point"]["exact"]
    assert rep["reversibility"]["downgrade"]["declared"] and rep["reversibility"]["downgrade"]["upgrade_again"]["status"] == "ok"
    assert rep["compatibility"]["verdict"] in ("app-only rollback safe", "database restore needed")
    assert {x["service"] for x in rep["lint"]} == set(BOTH)
    saved = json.loads(open(rep["report_json"]).read())
    assert saved["verdict"]["passed"] and open(rep["report_md"]).read().startswith("## Migration rehearsal on stg: PASS")
    assert stg.env("stg").record.versions == to("1.0.0")


def test_lossy_release_fails_naming_table_column_and_rows(stg):
    before = fingerprint(stg.env("stg"))
    rep = rehearsal.rehearse(stg, "stg", to("1.1.0-lossy"), skip=QUICK)
    f = rep["verdict"]["failures"]
    assert not rep["verdict"]["passed"]
    assert "integrity: assistant.agents: content changed in column(s) system_prompt on a table the migration " \
           "must not touch" in f
    n = before.rows("assistant", "agents")
    assert f"integrity: assistant.agents.system_prompt: values changed in {n} row(s), e.g. id=1, id=2, id=3, id=4, id=5" in f
    assert rep["reversibility"]["restore_point"]["exact"]
    _reset_exactly(stg, before)


def test_locking_release_fails_naming_the_lock(stg):
    rep = rehearsal.rehearse(stg, "stg", to("1.1.0-locking"), skip=QUICK)
    msgs = [x for x in rep.failures if "assistant.messages" in x]
    assert msgs and msgs[0].startswith("ACCESS EXCLUSIVE lock on assistant.messages held ")
    assert not rep.ok and rep.verdict.startswith("migration test on stg to assistant=1.1.0-locking, "
                                                 "automations=1.1.0-locking: FAIL, migration ")
    held = rep.locks["per_table"]["assistant.messages"]["longest_exclusive_s"]
    assert held >= 4.0  # PA_LOCK_SECONDS default 5 inside the migration transaction
    assert not any("memory_tags" in x for x in rep.failures)  # created by the migration itself
    assert any(b["relation"] in ("users", "messages") for b in rep.locks["blocked"])  # the canary waited
    assert rep.integrity["passed"]


def test_acceptance_figures_name_the_report(stg):
    """Regression: the e2e-cos figures read a key the report never had (``report_path``): always None."""
    from upgrade_infra.docsite import acceptance

    fig = acceptance.rehearse(stg, "stg", "1.1.0-lossy", fast=True)
    assert not fig["passed"] and fig["failures"] and fig["duration_s"] > 0
    assert fig["report"] and json.loads(open(fig["report"]).read())["verdict"]["passed"] is False


def test_hang_is_stopped_reported_and_reset(stg, monkeypatch):
    before = fingerprint(stg.env("stg"))
    monkeypatch.setattr(stg.manifest.migration, "timeout_s", 2.0)
    rep = rehearsal.rehearse(stg, "stg", to("1.1.0-locking"), skip=("lint", *QUICK))
    assert rep["migration"]["status"] == "timeout"
    assert rep["verdict"]["failures"][0].startswith("migration timeout: assistant 1.1.0-locking not ready after")
    assert rep["reset"] == {"status": "ok", "via": "restore point"} and "integrity" not in rep
    _reset_exactly(stg, before)


def test_crash_is_reported_and_reset(stg, monkeypatch):
    before = fingerprint(stg.env("stg"))
    monkeypatch.setitem(stg.manifest.services["automations"].versions, "1.1.0",
                        VersionSpec(command="{python} -c 'raise SystemExit(3)'"))
    rep = rehearsal.rehearse(stg, "stg", to("1.1.0"), skip=("lint", *QUICK))
    m = rep["migration"]
    assert m["status"] == "crashed" and m["services"]["assistant"]["status"] == "ok"
    assert m["services"]["automations"]["detail"] == "automations 1.1.0 exited while migrating"
    assert rep["reset"]["status"] == "ok" and rep["reversibility"]["restore_point"]["exact"]
    _reset_exactly(stg, before)


def test_killed_rehearsal_is_finished_by_resume(stg):
    env = stg.env("stg")
    before = fingerprint(env)
    args = [sys.executable, "-m", "upgrade_infra", "--stack", str(stg.stack), "--state-dir", str(stg.state.root)]
    killed = runner.run([*args, "migrate", "test", "--on", "stg", "--to", "assistant=1.1.0", "--skip", "lint"],
                        env={**os.environ, "UPGRADE_INFRA_FAULT": "migrate-test.fingerprint_after:exit"},
                        check=False, timeout=600)
    assert killed.returncode == -9  # SIGKILL after the migration ran: staging is migrated, the op unfinished
    assert stg.env("stg").record.versions["assistant"] == "1.1.0"
    res = runner.run([*args, "--json", "resume", "stg"], timeout=600)
    [done] = json.loads(res.stdout)["recovered"]
    assert done["kind"] == "migrate-test" and done["action"].startswith("staging restored to rp-")
    env = stg.env("stg")
    assert env.record.versions == to("1.0.0")
    assert [d for d in before.diff(fingerprint(env)) if d.table not in ("conversations", "messages")] == []
    assert Journal(env.state, "stg").incomplete() is None


def test_production_is_refused(stg):
    with pytest.raises(RefusedToTouchProduction):
        rehearsal.rehearse(stg, "production", to("1.1.0"))
    args = ["--stack", str(stg.stack), "--state-dir", str(stg.state.root), "--json"]
    assert main([*args, "migrate", "test", "--on", "production", "--to", "assistant=1.1.0"]) == 2
    assert main([*args, "migrate", "test", "--on", "stg", "--to", "assistant"]) == 2
    assert main([*args, "migrate", "lint", "--service", "assistant", "--from", "1.0.0", "--to", "1.1.0"]) == 0


def test_cross_major_restore_keeps_every_fingerprint(stg):
    res = crossmajor.cross_major(stg.env("production"))
    assert res.passed, res.to_dict()
    [t] = res.targets
    assert t.major == 16 and t.tables >= 9 and not t.differences
    assert not list((stg.state.root / "scratch").iterdir())
