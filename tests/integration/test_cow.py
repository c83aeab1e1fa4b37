"""The ``cow`` restore-point strategy, ``auto`` and ``stage create --sync cow`` on a real reflink filesystem.

As root, the module formats a small XFS image with ``reflink=1``, loop-mounts it and runs the
``ledger`` stack with its state dir there (unmounted afterwards); without root it skips with the
reason. Faults: the tool is killed (SIGKILL) inside the capture's database pause (``cow_window``) and
between the rollback's data-dir renames (``cow_swap``, no live data dir at that instant) as well as
at step boundaries; ``resume`` must bring the fingerprints back equal (the mechanism of test_faults).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from upgrade_infra.core import fsutil
from upgrade_infra.core.journal import Journal
from upgrade_infra.operations.session import Session
from upgrade_infra.restore import meta as rp_meta
from upgrade_infra.restore import points as snapshots
from upgrade_infra.restore.fingerprint import fingerprint

from ..conftest import running_stack
from .conftest import LEDGER
from .test_faults import _assert_back_to_start, cli


@pytest.fixture(scope="module")
def xfs():
    """A loop-mounted XFS image formatted with reflink=1 (root only); unmounted and removed after."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the cow tests loop-mount an XFS image formatted with reflink=1")
    if not shutil.which("mkfs.xfs"):
        pytest.skip("mkfs.xfs not found: apt-get install xfsprogs (nox -s tests installs it)")
    work = Path(tempfile.mkdtemp(prefix="uinfra-xfs-"))
    os.chmod(work, 0o711)
    img, mnt = work / "xfs.img", work / "mnt"
    mnt.mkdir()
    img.touch()
    os.truncate(img, 3 << 30)
    subprocess.run(["mkfs.xfs", "-q", "-m", "reflink=1", str(img)], check=True)
    r = subprocess.run(["mount", "-o", "loop", str(img), str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        pytest.skip(f"cannot loop-mount an XFS image here: {r.stderr.strip()}")
    os.chmod(mnt, 0o711)
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], check=False)
        shutil.rmtree(work, ignore_errors=True)


def stack_on(base: Path, prefix: str):
    """The ledger stack up, its state dir on ``base`` (the XFS mount)."""
    return running_stack(LEDGER, prefix, base=base)


@pytest.fixture(scope="module")
def cow_ledger(xfs):
    """The ledger stack up on the XFS mount, with the fingerprint every test must come back to."""
    with stack_on(xfs, "ledger-") as s:
        yield s, fingerprint(s.env("production"))


def _back_to_start(s: Session, before) -> None:
    _assert_back_to_start(s, before)  # versions, fingerprints, no open operation, healthy
    env = s.env("production")
    assert not any(p.name.startswith("data.__") for p in env.cluster.data_dir.parent.iterdir())


def _drop_points(s: Session) -> None:
    for rp in snapshots.list_points(s.state, "production"):
        snapshots.delete(s.env("production"), rp.id)


def _no_reflinks_here() -> Path:
    d = Path(tempfile.gettempdir())
    if fsutil.reflink_problem(d) is None:
        pytest.skip(f"{d} makes reflinks: no filesystem without them to test the refusal on")
    return d


# -- detection, refusal, auto ------------------------------------------------------------------------
def test_reflink_support_is_detected(xfs):
    assert fsutil.reflink_problem(xfs) is None
    assert fsutil.fs_type(xfs) == "xfs"
    d = _no_reflinks_here()
    why = fsutil.reflink_problem(d)
    assert why and "cannot make reflink copies" in why


def test_cow_refused_without_reflinks_names_the_fallback(ledger):
    _no_reflinks_here()
    s = ledger
    r = cli(s, "snapshot", "create", "production", "--strategy", "cow")
    assert r.returncode == 2, r.stderr
    assert "reflink" in r.stderr and "--strategy clone" in r.stderr
    assert snapshots.list_points(s.state, "production") == []
    chosen, why = snapshots.strategy_choice(s.env("production"))  # the default policy is auto
    assert chosen == "clone" and "reflink" in why and "using clone" in why
    st = json.loads(cli(s, "status").stdout)["environments"][0]["restore_points"]
    assert st["policy"] == "auto" and st["strategy"] == "clone"
    assert cli(s, "stage", "create", "st", "--sync", "cow").returncode == 2


def test_auto_picks_cow_and_says_why(cow_ledger):
    s, before = cow_ledger
    r = cli(s, "snapshot", "create", "production")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    rp_id = res["restore_point"]["id"]
    try:
        assert res["restore_point"]["strategy"] == "cow"
        assert "xfs" in res["strategy_why"] and res["strategy_why"].startswith("auto")
        assert res["downtime_s"] is not None and res["downtime_s"] < 5
        env = s.env("production")
        assert env.status().healthy  # services kept running through the pause
        rp = snapshots.get(s.state, rp_id)
        assert rp.strategy_why == res["strategy_why"] and snapshots.verify(env, rp) == []
        st = json.loads(cli(s, "status").stdout)["environments"][0]["restore_points"]
        assert st["strategy"] == "cow" and st["last"]["id"] == rp_id and "xfs" in st["why"]
        hist = json.loads(cli(s, "history", "production").stdout)
        op = next(o for o in hist if o["op"] == res["op"])
        assert op["data"]["strategy"] == "cow" and "xfs" in op["data"]["strategy_why"]
        human = cli(s, "history", "production")
        assert human.returncode == 0
        # damage is detected without reading the data (names and sizes)
        victim = next(p for p in (rp_meta.rp_dir(s.state, rp_id) / "pgdata" / "base").rglob("*")
                      if p.is_file() and p.stat().st_size > 0)
        with open(victim, "ab") as f:
            f.write(b"x")
        assert any("size mismatch" in p for p in snapshots.verify(env, rp))
    finally:
        snapshots.delete(s.env("production"), rp_id)
    _back_to_start(s, before)


def test_upgrade_rolls_back_from_a_cow_restore_point(cow_ledger):
    s, before = cow_ledger
    r = cli(s, "upgrade", "production", "--to", "ledger=broken", "--strategy", "cow")
    assert r.returncode == 1, r.stderr
    res = json.loads(r.stdout)
    assert res["outcome"] == "rolled-back"
    rb = res["rollback"]
    assert rb["strategy"] == "cow" and rb["staging_path"] == "spare" and rb["verified"]
    _back_to_start(s, before)
    _drop_points(s)


# -- kill -9 inside a cow capture and a cow restore, then resume -----------------------------------
@pytest.mark.parametrize("args,fault", [
    (("snapshot", "create", "production", "--strategy", "cow"), "cow_window"),
    (("upgrade", "production", "--to", "ledger=2.0", "--strategy", "cow"), "cow_window"),
    (("upgrade", "production", "--to", "ledger=2.0", "--strategy", "cow"), "upgrade.restore_point"),
], ids=["snapshot-in-pause", "upgrade-in-pause", "upgrade-at-capture"])
def test_killed_during_cow_capture_then_resume(cow_ledger, args, fault):
    s, before = cow_ledger
    _drop_points(s)
    r = cli(s, *args, fault=fault)
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert not s.env("production").cluster.running() or fault == "upgrade.restore_point"
    rec = cli(s, "resume", "production")
    assert rec.returncode == 0, rec.stderr
    assert snapshots.list_points(s.state, "production") == [] or args[0] == "upgrade"
    assert snapshots.incomplete(s.state) == []
    _drop_points(s)
    _back_to_start(s, before)


@pytest.mark.parametrize("fault", ["cow_swap", "rollback.stage_databases", "rollback.swap_databases",
                                   "rollback.start_services"])
def test_killed_during_cow_restore_then_resume(cow_ledger, fault):
    s, before = cow_ledger
    up = cli(s, "upgrade", "production", "--to", "ledger=2.0", "--strategy", "cow")
    assert up.returncode == 0 and json.loads(up.stdout)["outcome"] == "succeeded", up.stderr
    r = cli(s, "rollback", "production", fault=fault)
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert Journal(s.state, "production").incomplete().kind == "rollback"
    if fault == "cow_swap":  # killed between the renames: no live data dir at all
        assert not s.env("production").cluster.initialized()
    rec = cli(s, "resume", "production")
    assert rec.returncode == 0, rec.stderr
    _back_to_start(s, before)
    _drop_points(s)


# -- staging from a cow snapshot ---------------------------------------------------------------------
def test_stage_create_sync_cow(cow_ledger):
    s, before = cow_ledger
    _drop_points(s)
    r = cli(s, "stage", "create", "st", "--sync", "cow")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    try:
        assert res["strategy"] == "cow"
        sync = res["sync"]
        assert sync["fresh_restore_point"] is True and sync["source_outage_s"] == 0.0
        assert sync["data_dirs"]["from"] == sync["restore_point"]
        st = s.env("st")
        assert st.status().healthy
        assert fingerprint(st).equal(before)  # the same data as production's snapshot
        reset = cli(s, "stage", "reset", "st")  # through staging's own cow restore point
        assert reset.returncode == 0, reset.stderr
        assert fingerprint(s.env("st")).equal(before)
        assert snapshots.get(s.state, res["restore_point"]).strategy == "cow"  # staging's own, O(1) too
        # a second staging env reuses production's last cow restore point (no new pause)
        r2 = cli(s, "stage", "create", "st2", "--sync", "cow")
        assert r2.returncode == 0, r2.stderr
        sync2 = json.loads(r2.stdout)["sync"]
        assert sync2["fresh_restore_point"] is False and sync2["restore_point"] == sync["restore_point"]
    finally:
        for name in ("st", "st2"):
            cli(s, "stage", "destroy", name)
        _drop_points(s)
    _back_to_start(s, before)


def test_cow_restore_point_exports_as_dumps(cow_ledger, tmp_path):
    """Not portable as files: export converts it to dumps read from a throwaway reflink copy."""
    s, before = cow_ledger
    r = cli(s, "snapshot", "create", "production", "--strategy", "cow")
    assert r.returncode == 0, r.stderr
    rp_id = json.loads(r.stdout)["restore_point"]["id"]
    try:
        ex = cli(s, "snapshot", "export", rp_id, str(tmp_path))
        assert ex.returncode == 0, ex.stderr
        assert json.loads(ex.stdout)["strategy"] == "dump"
        assert (tmp_path / rp_id / "dump" / "ledger" / "toc.dat").is_file()
        env = s.env("production")
        assert not any(p.name.startswith("data.__ref_") for p in env.cluster.data_dir.parent.iterdir())
        assert snapshots.verify(env, snapshots.get(s.state, rp_id)) == []  # the restore point was not touched
    finally:
        _drop_points(s)
    _back_to_start(s, before)
