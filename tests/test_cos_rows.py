"""The acceptance report's new rows measure real files: secret scan, secret file modes, reporting
consistency, documentation accuracy; the history chart's budget comes from the policy."""

from __future__ import annotations

import json
import os

from upgrade_infra.cli import doccheck
from upgrade_infra.docsite import cos

from .conftest import REPO


def test_secret_scan_finds_planted_values_and_credentials(tmp_path):
    (tmp_path / "a.json").write_text('{"ok": "nothing here", "pw": "password=«redacted»"}')
    (tmp_path / "b.md").write_text("key: planted-secret-123")
    (tmp_path / "c.ipynb").write_text("postgresql://app:hunter22@127.0.0.1/db")
    out = cos.secret_scan([tmp_path], {"planted-secret-123"})
    assert out == {"files": 3, "hits": ["b.md", "c.ipynb"]}


def test_secret_modes(tmp_path):
    d = tmp_path / "secrets" / "production"
    d.mkdir(parents=True, mode=0o700)
    os.chmod(tmp_path / "secrets", 0o700)
    (d / "k").write_text("x")
    os.chmod(d / "k", 0o600)
    assert cos.secret_modes(tmp_path) == {"files": 1, "bad": []}
    os.chmod(d / "k", 0o644)
    assert cos.secret_modes(tmp_path)["bad"] == ["k 644"]


def test_reporting_consistency(tmp_path):
    summary = {"runbooks": [{"name": "maintenance", "status": "passed"}, {"name": "rollback", "status": "passed"}]}
    (tmp_path / "maintenance.ipynb").write_text("# TYPE upgrade_infra_environment_up gauge\\n"
                                               "# TYPE upgrade_infra_rollbacks gauge")
    (tmp_path / "maintenance.json").write_text(json.dumps({"status": "passed"}))
    (tmp_path / "rollback.json").write_text(json.dumps({"status": "failed"}))
    rep = cos.reporting(summary, tmp_path, [{"at": "x"}])
    assert rep == {"runbooks": 2, "missing": ["rollback"], "disagree": [], "history_runs": 1, "metric_families": 2}


def test_report_rows_and_budget(tmp_path):
    latest = tmp_path / "latest"
    latest.mkdir()
    summary = {"generated_at": "2026-12-01T00:00:00Z", "gate": "pass", "runbooks": [],
               "rollback": {"total_s": 4.0, "budget_s": 120.0, "verified": True}}
    history = [{"at": "2026-12-01T00:00:00Z", "rollback_s": 4.0}]
    text = cos.write_report(tmp_path / "validation", summary, history, latest,
                            doc_check=doccheck.summary(REPO)).read_text()
    for row in ("Disaster recovery", "Reporting", "Security review", "Documentation accurate"):
        assert row in text
    assert "0 mismatches" in text
    assert (tmp_path / "validation" / "rollback-history.png").exists()
