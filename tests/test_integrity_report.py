"""The migration report's verdict and readable section (pure functions over report facts)."""

from __future__ import annotations

import json

from upgrade_infra.migration import report
from upgrade_infra.migration.rehearsal import parse_targets

TH = {"max_duration_s": 60, "max_exclusive_lock_s": 2, "timeout_s": 120}


def _rep(**kw):
    base = {"environment": "stg", "from_versions": {"assistant": "1.0.0"}, "to_versions": {"assistant": "1.1.0"},
            "thresholds": TH, "migration": {"status": "ok", "duration_s": 3.2, "mode": "start",
                                            "services": {"assistant": {"status": "ok", "seconds": 3.2}}},
            "locks": {"interval_s": 0.05, "samples": 60, "max_gap_s": 0.06, "blocked": [], "per_table": {
                "assistant.users": {"modes": {"AccessExclusiveLock": 0.4}, "longest_exclusive_s": 0.4,
                                    "longest_exclusive_mode": "AccessExclusiveLock", "longest_write_blocking_s": 0.4}}},
            "integrity": {"passed": True, "failures": [], "tables": [], "constraints": [], "invariants": [],
                          "lost_values": []},
            "validation": {"passed": True, "failed": []},
            "reversibility": {"restore_point": {"exact": True, "verdict": "returns the exact before fingerprints"}},
            "compatibility": {"app_only_rollback_safe": True, "verdict": "app-only rollback safe"}, "errors": []}
    base.update(kw)
    return base


def test_lock_label():
    assert report.lock_label("AccessExclusiveLock") == "ACCESS EXCLUSIVE"
    assert report.lock_label("ShareRowExclusiveLock") == "SHARE ROW EXCLUSIVE"
    assert report.lock_label(None) == "-"


def test_pass_and_readable():
    v = report.evaluate(_rep())
    assert v == {"passed": True, "failures": [], "warnings": []}
    text = report.render(_rep())
    assert "PASS" in text and "| assistant.users | 0.40s | ACCESS EXCLUSIVE |" in text


def test_lock_and_duration_thresholds_name_table_mode_and_time():
    locks = _rep()["locks"]
    locks["per_table"]["assistant.messages"] = {"modes": {}, "longest_exclusive_s": 5.1,
                                                "longest_exclusive_mode": "AccessExclusiveLock",
                                                "longest_write_blocking_s": 5.1}
    locks["per_table"]["assistant.memory_tags"] = dict(locks["per_table"]["assistant.messages"])
    v = report.evaluate(_rep(locks=locks, new_tables=["assistant.memory_tags"],
                             migration={"status": "ok", "duration_s": 75.0}))
    assert v["failures"] == ["migration took 75.0s > max_duration_s 60s",
                             "ACCESS EXCLUSIVE lock on assistant.messages held 5.1s > max_exclusive_lock_s 2s"]


def test_crash_integrity_restore_and_warnings():
    v = report.evaluate(_rep(
        migration={"status": "timeout", "detail": "assistant not ready after 120s"},
        integrity={"failures": ["assistant.agents: content changed in column(s) system_prompt"]},
        validation={"passed": False, "failed": ["assistant answers a message: 500"]},
        reversibility={"restore_point": {"exact": False, "differences": ["assistant.users: rows 3 -> 2"]},
                       "downgrade": {"declared": True, "exact": False, "differences": ["x"]}},
        compatibility={"app_only_rollback_safe": False, "detail": "old version does not start"},
        lint=[{"service": "assistant", "lock_hazards": 2}], errors=["boom"]))
    assert not v["passed"]
    assert v["failures"][0] == "migration timeout: assistant not ready after 120s"
    assert "integrity: assistant.agents: content changed in column(s) system_prompt" in v["failures"]
    assert any(f.startswith("restore-point rollback did not return") for f in v["failures"])
    assert v["failures"][-1] == "error: boom"
    assert len(v["warnings"]) == 3


def test_write_scrubs_and_writes_markdown(private_tmp):
    rep = _rep(source="postgresql://u:sup3rsecret@h/db")
    j, md = report.write(rep, private_tmp / "r" / "rep.json")
    assert "sup3rsecret" not in j.read_text() and json.loads(j.read_text())["environment"] == "stg"
    assert md.name == "rep.md" and md.read_text().startswith("## Migration rehearsal on stg: PASS")


def test_parse_targets():
    assert parse_targets(["assistant=1.1.0", " automations = 1.1.0 "]) == {"assistant": "1.1.0", "automations": "1.1.0"}
    import pytest

    from upgrade_infra.core.errors import BadInput

    with pytest.raises(BadInput):
        parse_targets(["assistant"])
