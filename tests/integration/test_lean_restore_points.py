"""Lean restore points: data-dir exclusions, hard links to the previous restore point's unchanged files,
a live data dir that never shares a file with a restore point, and the disk use in ``status``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from upgrade_infra.operations import rollback
from upgrade_infra.restore import points as snapshots
from upgrade_infra.restore.datadirs import bytes_of, disk_use, excluded
from upgrade_infra.restore.meta import rp_dir

from ..conftest import running_stack
from .conftest import LEDGER

MB = 1 << 20


def test_exclusion_patterns():
    pats = ["cache/**", "*.tmp", "logs"]
    assert excluded("cache", pats) and excluded("cache/a/b.bin", pats)
    assert excluded("x.tmp", pats) and excluded("logs", pats)
    assert not excluded("cached.txt", pats) and not excluded("keep/a.bin", pats)


@pytest.fixture
def lean():
    def edit(data):
        data["services"]["ledger"]["data_dir_exclude"] = ["cache/**", "*.tmp"]

    with running_stack(LEDGER, "uinfra-lean-", edit=edit) as s:
        yield s


def test_restore_points_are_lean_and_rollback_is_safe(lean):
    s = lean
    env = s.env("production")
    d = env.data_dir("ledger")
    (d / "cache").mkdir(parents=True, exist_ok=True)
    (d / "cache" / "big.bin").write_bytes(os.urandom(6 * MB))
    (d / "scratch.tmp").write_bytes(os.urandom(MB))
    (d / "keep").mkdir(exist_ok=True)
    payload = os.urandom(3 * MB)
    (d / "keep" / "a.bin").write_bytes(payload)

    first = snapshots.create(env)["restore_point"]["id"]
    (d / "notes.txt").write_text("changed between the restore points\n")
    second = snapshots.create(env)["restore_point"]["id"]
    c1, c2 = (rp_dir(s.state, r) / "data" / "ledger" for r in (first, second))
    for c in (c1, c2):
        assert (c / "keep" / "a.bin").read_bytes() == payload
        assert not (c / "cache").exists() and not (c / "scratch.tmp").exists()
    # the unchanged file is stored once: the second restore point links to the first one's copy
    assert os.stat(c1 / "keep" / "a.bin").st_ino == os.stat(c2 / "keep" / "a.bin").st_ino
    assert 3 * MB <= bytes_of(env) < 4 * MB  # what a restore point copies: no cache, no temp files

    use = disk_use(s.state, "production")
    assert use["count"] == 2
    assert use["apparent_bytes"] - use["disk_bytes"] >= 2 * MB  # a.bin counted once on disk
    assert use["disk_bytes"] < 3 * 3 * MB + 2 * MB  # 2 restore points + spares, no cache, a.bin shared

    (d / "keep" / "a.bin").write_bytes(b"broken")
    res = rollback.rollback(env, second)
    assert res["verified"], res
    live = env.data_dir("ledger")
    assert (live / "keep" / "a.bin").read_bytes() == payload and not (live / "cache").exists()
    for c in (c1, c2):  # the live data dir shares no file with a restore point
        assert os.stat(live / "keep" / "a.bin").st_ino != os.stat(c / "keep" / "a.bin").st_ino
    (live / "keep" / "a.bin").write_bytes(b"written after the rollback")
    assert snapshots.verify(env, snapshots.get(s.state, first)) == []
    assert snapshots.verify(env, snapshots.get(s.state, second)) == []

    r = subprocess.run([sys.executable, "-m", "upgrade_infra", "--stack", str(s.stack), "--state-dir",
                        str(s.state.root), "--json", "status"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rp = json.loads(r.stdout)["environments"][0]["restore_points"]
    assert rp["count"] == 2 and rp["disk_bytes"] > 0
    human = subprocess.run([sys.executable, "-m", "upgrade_infra", "--stack", str(s.stack), "--state-dir",
                            str(s.state.root), "status"], capture_output=True, text=True, timeout=120)
    assert "MB on disk" in human.stdout
