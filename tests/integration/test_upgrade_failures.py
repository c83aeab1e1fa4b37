"""Upgrades that fail in the ways real ones do roll back to exactly the data before (ledger stack):
a migration that crashes halfway (its first statement committed), a service that never becomes
ready; and bad input changes nothing."""

from __future__ import annotations

import pytest

from upgrade_infra.core import sql
from upgrade_infra.core.errors import BadInput, UnknownName
from upgrade_infra.core.journal import Journal
from upgrade_infra.operations import upgrade
from upgrade_infra.restore.fingerprint import fingerprint

COLUMNS = "SELECT column_name FROM information_schema.columns WHERE table_name = 'accounts'"




@pytest.mark.parametrize("release, failed_step", [("halfway", "start_services"), ("broken", "start_services")])
def test_failed_upgrade_rolls_back_exactly(ledger, release, failed_step):
    env = ledger.env("production")
    before = fingerprint(env)
    res = upgrade.upgrade(env, {"ledger": release})
    assert res["outcome"] == "rolled-back" and res["failed_step"] == failed_step
    assert res["rollback"]["verified"] and env.record.versions == {"ledger": "1.0"}
    assert fingerprint(env).equal(before)
    if release == "halfway":  # the half-applied schema went to the quarantine, not production
        cols = {r["column_name"] for r in sql.fetch(env.conninfo("ledger"), COLUMNS)}
        qcols = {r["column_name"] for r in sql.fetch(env.conninfo(res["rollback"]["quarantine"]["where"]["ledger"]),
                                                      COLUMNS)}
        assert "currency" not in cols and "currency" in qcols
    assert Journal(env.state, "production").incomplete() is None


def test_bad_input_changes_nothing(ledger):
    env = ledger.env("production")
    n = len(Journal(env.state, "production").operations())
    with pytest.raises(UnknownName):
        upgrade.parse_targets(env, ["ledger=9.9"])
    with pytest.raises(BadInput):
        upgrade.parse_targets(env, ["ledger"])
    with pytest.raises(BadInput, match="already runs"):
        upgrade.upgrade(env, {"ledger": "1.0"})
    assert len(Journal(env.state, "production").operations()) == n
