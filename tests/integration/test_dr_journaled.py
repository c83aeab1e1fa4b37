"""Disaster recovery is journaled like every other operation: ``env restore`` killed (SIGKILL) or
failing at any of its steps leaves an environment that ``resume`` removes (or nothing at all), the
operation and its steps are in ``history``, and the restore then runs again to the same data.
An export or import killed half-way leaves a partial copy that ``resume`` removes, and (since it
only read the environment) blocks nothing meanwhile."""

from __future__ import annotations

import json

import pytest

from upgrade_infra.core.journal import Journal
from upgrade_infra.operations.session import Session
from upgrade_infra.restore import points as snapshots
from upgrade_infra.restore.fingerprint import fingerprint
from upgrade_infra.stack.ports import holder_of

from ..conftest import running_stack
from ..faultcli import cli, killed
from .conftest import LEDGER

NEW = "dr"


@pytest.fixture(scope="module")
def ledger():
    """The ledger production with one dump and one fs restore point, and its fingerprint."""
    with running_stack(LEDGER, "uinfra-dr-") as s:
        env = s.env("production")
        rps = {st: snapshots.create(env, st)["restore_point"]["id"] for st in ("dump", "fs", "clone")}
        yield s, rps, fingerprint(env)


def _gone(s: Session, port_base: int) -> None:
    """Nothing of the half-built environment is left: no record, no directory, no process on its ports."""
    assert s.state.load_record(NEW) is None and not s.state.env_dir(NEW).exists()
    assert all(holder_of(p) is None for p in range(port_base, port_base + 10))
    assert Journal(s.state, NEW).incomplete() is None


def _restore_again(s: Session, rp: str, before) -> None:
    r = cli(s, "env", "restore", NEW, "--from", rp)
    assert r.returncode == 0, r.stderr
    try:
        assert json.loads(r.stdout)["verified"] and fingerprint(s.env(NEW)).equal(before)
    finally:
        s.env(NEW).destroy()


@pytest.mark.parametrize("strategy, step", [("dump", "up_empty"), ("dump", "restore ledger"),
                                            ("dump", "start_services"), ("dump", "verify"),
                                            ("fs", "place_cluster"), ("fs", "up")])
def test_killed_during_env_restore_then_resume_removes_it(ledger, strategy, step):
    s, rps, before = ledger
    r = cli(s, "env", "restore", NEW, "--from", rps[strategy], fault=f"env-restore.{step}")
    assert killed(r, f"env-restore.{step}"), r.stderr
    inc = Journal(s.state, NEW).incomplete()
    assert inc.kind == "env-restore" and inc.steps[-1].name == step and inc.steps[-1].status == "interrupted"
    port_base = inc.data["placement"]["port_base"]  # local: its port block
    blocked = cli(s, "env", "up", NEW)  # half-built: refused, naming resume
    assert blocked.returncode == 2 and f"resume {NEW}" in blocked.stderr
    rec = cli(s, "resume", NEW)
    assert rec.returncode == 0, rec.stderr
    assert json.loads(rec.stdout)["recovered"][0]["kind"] == "env-restore"
    _gone(s, port_base)
    hist = json.loads(cli(s, "history", NEW).stdout)
    assert hist[-1]["kind"] == "env-restore" and hist[-1]["outcome"] == "recovered"
    assert [x["name"] for x in hist[-1]["steps"]][-1] == step
    _restore_again(s, rps[strategy], before)


def test_a_failed_step_of_env_restore_removes_the_new_environment(ledger):
    s, rps, before = ledger
    r = cli(s, "env", "restore", NEW, "--from", rps["dump"], fault="env-restore.place_data_dirs:raise")
    assert r.returncode != 0 and "place_data_dirs" in r.stderr
    op = Journal(s.state, NEW).operations()[-1]
    assert op.outcome == "failed" and op.step("up_empty").status == "undone"
    assert s.state.load_record(NEW) is None and not s.state.env_dir(NEW).exists()
    _restore_again(s, rps["dump"], before)


def test_killed_export_and_import_block_nothing_and_resume_removes_their_leftovers(ledger, tmp_path):
    s, rps, before = ledger
    dest = tmp_path / "backup"
    r = cli(s, "snapshot", "export", rps["clone"], str(dest), fault="snapshot-export.copy_data_dirs")
    assert killed(r, "snapshot-export.copy_data_dirs"), r.stderr
    partial = dest / rps["clone"]
    assert partial.is_dir() and not (partial / "SHA256SUMS").exists()
    inc = Journal(s.state, "production").incomplete()
    assert inc.kind == "snapshot-export" and inc.steps[-1].name == "copy_data_dirs"
    assert cli(s, "env", "up", "production").returncode == 0  # production is not half-done: nothing waits
    rec = cli(s, "resume", "production")
    assert rec.returncode == 0, rec.stderr
    assert not partial.exists() and Journal(s.state, "production").incomplete() is None
    assert Journal(s.state, "production").get(inc.op).outcome == "recovered"
    assert cli(s, "snapshot", "export", rps["clone"], str(dest)).returncode == 0  # again, to completion

    r = cli(s, "snapshot", "import", str(partial), fault="snapshot-import.verify")
    assert killed(r, "snapshot-import.verify"), r.stderr
    inc = Journal(s.state, "production").incomplete()
    assert inc.kind == "snapshot-import" and inc.data["tmp"]
    tmp = s.state.root / "restore-points" / inc.data["tmp"].rsplit("/", 1)[1]
    assert tmp.is_dir()
    rec = cli(s, "resume", "production")
    assert rec.returncode == 0, rec.stderr
    assert not tmp.exists() and Journal(s.state, "production").incomplete() is None
    imp = cli(s, "snapshot", "import", str(partial))
    assert imp.returncode == 0, imp.stderr
    hist = [o for o in Journal(s.state, "production").operations() if o.kind.startswith("snapshot-")]
    assert [(o.kind, o.outcome) for o in hist] == [("snapshot-export", "recovered"), ("snapshot-export", "succeeded"),
                                                   ("snapshot-import", "recovered"), ("snapshot-import", "succeeded")]
    _restore_again(s, json.loads(imp.stdout)["restore_point"], before)
