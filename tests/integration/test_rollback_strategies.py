"""Restore points with every strategy on real PostgreSQL: restore brings data back exactly, rows
written since are reported from the quarantine; damaged or missing restore points, disk full,
retention, and disaster recovery (export, import, env restore)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from upgrade_infra.core import fsutil, sql
from upgrade_infra.core.errors import DiskFull, RestorePointError, UnknownName
from upgrade_infra.core.journal import Journal
from upgrade_infra.core.steps import StepFailed
from upgrade_infra.operations import dr, rollback
from upgrade_infra.restore import meta as rp_meta
from upgrade_infra.restore import names as rp_names
from upgrade_infra.restore import points as snapshots
from upgrade_infra.restore import quarantine
from upgrade_infra.restore.fingerprint import fingerprint


def _write_after(env, n: int = 3) -> None:
    sql.execute(env.conninfo("ledger"), f"INSERT INTO accounts (name, balance) SELECT 'late ' || g, g "
                                        f"FROM generate_series(1, {n}) g")
    (env.data_dir("ledger") / "late.txt").write_text("written after the restore point")


@pytest.mark.parametrize("strategy", ["clone", "dump", "fs"])
def test_restore_brings_data_back_and_reports_new_rows(ledger, strategy):
    env = ledger.env("production")
    created = snapshots.create(env, strategy, label=f"test {strategy}")
    rp_id = created["restore_point"]["id"]
    rp_dir = rp_meta.rp_dir(env.state, rp_id)
    assert oct(rp_dir.stat().st_mode & 0o777) == oct(0o700)
    assert oct((rp_dir / "meta.json").stat().st_mode & 0o777) == oct(0o600)
    before = fingerprint(env)
    _write_after(env)
    res = rollback.rollback(env, to=rp_id)
    assert res["verified"] and not res["over_budget"]
    assert fingerprint(env).equal(before)
    assert not (env.data_dir("ledger") / "late.txt").exists()
    q = quarantine.load(env.state, res["op"])
    assert (Path(q["data_dirs"]["ledger"]) / "late.txt").exists()
    accounts = next(t for t in res["quarantine"]["tables"] if t["table"] == "accounts")
    assert accounts["rows_new"] == 3 and res["quarantine"]["rows_new_total"] == 3
    if strategy != "fs":
        assert "export" in accounts and accounts["export"].startswith(env.cluster.install.bin("psql"))
    # the restore point stays intact and reusable
    assert snapshots.verify(env, snapshots.get(env.state, rp_id)) == []
    again = rollback.rollback(env, to=rp_id)
    assert again["quarantine"]["rows_new_total"] == 0 and fingerprint(env).equal(before)


def test_damaged_or_missing_restore_point_changes_nothing(ledger):
    env = ledger.env("production")
    rp_id = snapshots.create(env, "dump")["restore_point"]["id"]
    before = fingerprint(env)
    victim = next(p for p in (rp_meta.rp_dir(env.state, rp_id) / "dump" / "ledger").iterdir()
                  if p.name.endswith(".dat.gz") or p.name == "toc.dat")
    with open(victim, "ab") as f:
        f.write(b"\0")
    with pytest.raises(RestorePointError, match="checksum mismatch"):
        rollback.rollback(env, to=rp_id)
    with pytest.raises(UnknownName):
        rollback.rollback(env, to="rp-00000000")
    assert fingerprint(env).equal(before) and env.status().healthy
    assert Journal(env.state, "production").incomplete() is None
    meta = rp_meta.rp_dir(env.state, rp_id) / "meta.json"
    meta.write_text(meta.read_text().replace('"1.0"', '"9.9"'))
    with pytest.raises(RestorePointError, match="metadata checksum"):
        snapshots.get(env.state, rp_id)
    snapshots.delete(env, rp_id)


def test_disk_full_while_creating_restore_point(ledger, monkeypatch):
    env = ledger.env("production")
    before = set(rp_meta.all_ids(env.state))
    monkeypatch.setattr(fsutil, "free_bytes", lambda path: 1000)
    with pytest.raises(StepFailed, match="not enough disk") as e:
        snapshots.create(env, "clone")
    assert isinstance(e.value.cause, DiskFull)
    assert set(rp_meta.all_ids(env.state)) == before
    assert env.status().healthy  # services were started again
    assert Journal(env.state, "production").operations()[-1].outcome == "failed"


def test_prune_applies_retention_and_keeps_young_quarantines(ledger):
    env = ledger.env("production")
    for _ in range(2):
        snapshots.create(env, "clone")
    n = len(snapshots.list_points(env.state, "production"))
    quarantines = quarantine.list_all(env.state, "production")
    plan = snapshots.prune(env, keep_last=1, max_age_days=0, dry_run=True)
    assert len(plan["deleted"]) == n - 1 and plan["quarantines_deleted"] == []
    res = snapshots.prune(env, keep_last=1, max_age_days=0)
    assert len(snapshots.list_points(env.state, "production")) == 1
    assert quarantine.list_all(env.state, "production") == quarantines  # younger than quarantine_days
    names = set(sql.database_sizes(env.conninfo()))
    for d in res["deleted"]:
        assert rp_names.clone_name("ledger", d["id"]) not in names

def test_export_import_and_restore_a_new_environment(ledger, tmp_path):
    env = ledger.env("production")
    rp_id = snapshots.create(env, "clone")["restore_point"]["id"]
    before = fingerprint(env)
    out = dr.export(env, rp_id, tmp_path / "backup")
    exported = Path(out["path"])
    assert oct(exported.stat().st_mode & 0o777) == oct(0o700)
    broken = tmp_path / "broken"
    shutil.copytree(exported, broken)
    (broken / "data" / "ledger" / "state.json").write_text("{}")
    with pytest.raises(RestorePointError, match="damaged"):
        dr.import_(env.state, broken)
    imp = dr.import_(env.state, exported)
    assert imp["original_id"] == rp_id and imp["strategy"] == "dump"
    res = dr.restore_env(env.manifest, env.state, "dr", imp["restore_point"])
    try:
        assert res["verified"]
        assert fingerprint(ledger.env("dr")).equal(before)
        assert res["port_base"] != env.port_base
    finally:
        ledger.env("dr").destroy()
