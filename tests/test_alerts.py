"""The example alert rules (docs/monitoring/alerts.yml) load and fire as documented, and every
metric they use is one `upgrade-infra metrics` really exposes (rollback metrics from a journal)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from ruamel.yaml import YAML

from upgrade_infra.core.journal import Journal
from upgrade_infra.core.state import StateDir
from upgrade_infra.observe import metrics

from .conftest import REPO

RULES = REPO / "docs" / "monitoring" / "alerts.yml"
RULE_TESTS = REPO / "tests" / "data" / "alerts_test.yml"


def _promtool() -> str:
    path = shutil.which("promtool")
    if not path:
        pytest.skip("promtool not installed (Debian package `prometheus`; nox installs it)")
    return path


def test_rules_load_with_promtool():
    r = subprocess.run([_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 7 rules found" in r.stdout


def test_rules_fire_as_documented_with_promtool():
    r = subprocess.run([_promtool(), "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


class _Env:
    """What rollback_samples reads of an environment: its name and state dir."""

    def __init__(self, state: StateDir, name: str) -> None:
        self.state, self.name = state, name


def _write_journal(state: StateDir, env: str) -> None:
    """An upgrade that failed its smoke checks and rolled back automatically (400 s), then an
    upgrade interrupted by a crash: the journal's on-disk format, line by line."""
    lines = [
        {"type": "op-start", "op": "op-1", "env": env, "kind": "upgrade", "at": 1000.0},
        {"type": "op-start", "op": "op-2", "env": env, "kind": "rollback", "parent": "op-1", "at": 1010.0},
        {"type": "op-end", "op": "op-2", "env": env, "outcome": "succeeded", "at": 1410.0},
        {"type": "op-end", "op": "op-1", "env": env, "outcome": "rolled-back", "at": 1411.0},
        {"type": "op-start", "op": "op-3", "env": env, "kind": "upgrade", "at": 2000.0},
        {"type": "step-begin", "op": "op-3", "env": env, "step": "switch_versions", "at": 2001.0},
    ]
    path = Journal(state, env).path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))


def test_rollback_metrics_from_the_journal(tmp_path):
    state = StateDir(tmp_path / "state").ensure()
    _write_journal(state, "production")
    text = metrics.render(metrics.rollback_samples(_Env(state, "production")))
    assert 'upgrade_infra_rollbacks{env="production",outcome="succeeded",trigger="auto"} 1' in text
    assert 'upgrade_infra_last_rollback_duration_seconds{env="production"} 400' in text
    assert 'upgrade_infra_last_rollback_succeeded{env="production"} 1' in text
    assert 'upgrade_infra_last_rollback_timestamp_seconds{env="production"} 1410' in text
    assert 'upgrade_infra_operation_unfinished{env="production"} 1' in text
    assert 'upgrade_infra_operations{env="production",kind="upgrade",outcome="rolled-back"} 1' in text


def test_every_metric_in_the_rules_is_exposed():
    rules = YAML(typ="safe").load(RULES.read_text())
    used = {m for g in rules["groups"] for r in g["rules"] for m in re.findall(r"upgrade_infra_\w+", r["expr"])}
    exposed = {metrics.PREFIX + name for name in metrics.HELP}
    assert used and used <= exposed, used - exposed
