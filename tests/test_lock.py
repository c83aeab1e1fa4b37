"""The per-environment lock: refusal names the holder, a dead holder's lock is taken over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from upgrade_infra.errors import LockHeld
from upgrade_infra.lock import env_lock, holder
from upgrade_infra.state import StateDir

HOLD = textwrap.dedent("""
    import os, signal, sys, time
    from upgrade_infra.lock import env_lock
    from upgrade_infra.state import StateDir
    with env_lock(StateDir(sys.argv[1]), "production", "upgrade production --to assistant=1.1.0"):
        print("locked", flush=True)
        if sys.argv[2] == "die":
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(30)
""")


def _holder_proc(root, mode):
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(root), mode], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def test_refusal_names_pid_and_command(tmp_path):
    p = _holder_proc(tmp_path, "hold")
    try:
        with pytest.raises(LockHeld) as e, env_lock(StateDir(tmp_path), "production", "rollback production"):
            pass
        assert f"pid {p.pid}" in e.value.message
        assert "upgrade production --to assistant=1.1.0" in e.value.message
        assert holder(StateDir(tmp_path), "production")["alive"] is True
        with env_lock(StateDir(tmp_path), "staging-1", "other env"):  # other environments are free
            pass
    finally:
        p.kill()
        p.wait()


def test_dead_holder_is_taken_over_and_reported(tmp_path):
    p = _holder_proc(tmp_path, "die")
    p.wait()
    assert p.returncode == -signal.SIGKILL
    info = holder(StateDir(tmp_path), "production")
    assert info["pid"] == p.pid and info["alive"] is False
    with env_lock(StateDir(tmp_path), "production", "resume production") as lk:
        assert lk.stale and lk.stale["pid"] == p.pid
        assert lk.stale["command"].startswith("upgrade production")
        assert holder(StateDir(tmp_path), "production")["pid"] == os.getpid()
    assert holder(StateDir(tmp_path), "production") is None  # released cleanly: file emptied


def test_reentrant_in_one_process(tmp_path):
    st = StateDir(tmp_path)
    with env_lock(st, "production", "upgrade") as outer:
        with env_lock(st, "production", "rollback (automatic)") as inner:
            assert inner.nested and not outer.nested
        assert holder(st, "production")["alive"] is True
    t0 = time.monotonic()
    with env_lock(st, "production", "again"):
        pass
    assert time.monotonic() - t0 < 5


def test_lock_file_is_private(tmp_path):
    with env_lock(StateDir(tmp_path), "production", "x") as lk:
        assert oct(lk.path.stat().st_mode & 0o777) == oct(0o600)
