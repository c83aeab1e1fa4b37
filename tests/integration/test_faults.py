"""Fault injection: the tool is killed (SIGKILL) at every step boundary of an upgrade and of a
rollback; recovery (`rollback` / `resume`) must bring the data back exactly (fingerprints equal).

Runs on the small ``ledger`` stack (tests/data/ledger: one service migrating on start, data
rewritten by its 2.0 migration) so each kill-and-recover cycle takes seconds; the step names come
from the step lists themselves, so a new step is covered without editing this file.
"""

from __future__ import annotations

import json

import pytest

from upgrade_infra.core.journal import Journal
from upgrade_infra.core.steps import step_names
from upgrade_infra.operations.rollback import rollback_steps
from upgrade_infra.operations.session import Session
from upgrade_infra.operations.upgrade import upgrade_steps
from upgrade_infra.restore.fingerprint import fingerprint

from ..conftest import running_stack
from ..faultcli import cli, killed
from .conftest import LEDGER

UPGRADE_STEPS = step_names(upgrade_steps("clone"))
ROLLBACK_STEPS = step_names(rollback_steps("clone"))


@pytest.fixture(scope="module")
def ledger():
    """The ledger stack up, with the fingerprint every injected fault must come back to."""
    with running_stack(LEDGER, "uinfra-faults-") as s:
        yield s, fingerprint(s.env("production"))


def _assert_back_to_start(s: Session, before) -> None:
    env = s.env("production")
    assert env.record.versions == {"ledger": "1.0"}
    after = fingerprint(env)
    assert after.equal(before), [str(d) for d in after.diff(before)]
    assert Journal(s.state, "production").incomplete() is None
    assert env.status().healthy


@pytest.mark.parametrize("step", UPGRADE_STEPS)
def test_killed_during_upgrade_then_rollback(ledger, step):
    s, before = ledger
    r = cli(s, "upgrade", "production", "--to", "ledger=2.0", fault=f"upgrade.{step}")
    assert killed(r, f"upgrade.{step}"), r.stderr
    rec = cli(s, "rollback", "production")
    assert rec.returncode == 0, rec.stderr
    assert json.loads(rec.stdout)["recovered"][0]["kind"] == "upgrade"
    _assert_back_to_start(s, before)


@pytest.mark.parametrize("step", ROLLBACK_STEPS)
def test_killed_during_rollback_then_resume(ledger, step):
    s, before = ledger
    up = cli(s, "upgrade", "production", "--to", "ledger=2.0")
    assert up.returncode == 0 and json.loads(up.stdout)["outcome"] == "succeeded", up.stderr
    r = cli(s, "rollback", "production", fault=f"rollback.{step}")
    assert killed(r, f"rollback.{step}"), r.stderr
    assert Journal(s.state, "production").incomplete().kind == "rollback"
    if step == "swap_databases":  # other commands are refused until it is finished
        blocked = cli(s, "upgrade", "production", "--to", "ledger=2.0")
        assert blocked.returncode == 2 and "resume production" in blocked.stderr
    rec = cli(s, "resume", "production")
    assert rec.returncode == 0, rec.stderr
    _assert_back_to_start(s, before)


def test_raise_mode_rolls_back_in_process(ledger):
    """UPGRADE_INFRA_FAULT=<step>:raise is a step failure: the upgrade rolls itself back at once."""
    s, before = ledger
    r = cli(s, "upgrade", "production", "--to", "ledger=2.0", fault="upgrade.smoke:raise")
    assert r.returncode == 1
    res = json.loads(r.stdout)
    assert res["outcome"] == "rolled-back" and res["failed_step"] == "smoke"
    _assert_back_to_start(s, before)
