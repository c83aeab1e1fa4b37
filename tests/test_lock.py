"""The per-environment lock: refusal names the holder, a dead holder's lock is taken over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from upgrade_infra.core.errors import LockHeld
from upgrade_infra.core.lock import env_lock, holder
from upgrade_infra.core.state import StateDir

HOLD = textwrap.dedent("""
    import os, signal, sys, time
    from upgrade_infra.core.lock import env_lock
    from upgrade_infra.core.state import StateDir
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


HOLD_MODE = textwrap.dedent("""
    import sys, time
    from upgrade_infra.core.lock import env_lock
    from upgrade_infra.core.state import StateDir
    with env_lock(StateDir(sys.argv[1]), "production", sys.argv[3], shared=sys.argv[2] == "shared"):
        print("locked", flush=True)
        time.sleep(30)
""")


def _hold(root, mode, command):
    p = subprocess.Popen([sys.executable, "-c", HOLD_MODE, str(root), mode, command], stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def test_readers_share_and_exclude_a_writer(tmp_path):
    st = StateDir(tmp_path)
    r = _hold(tmp_path, "shared", "stage create staging --from production")
    try:
        with env_lock(st, "production", "snapshot export rp-1", shared=True) as lk:  # readers run together
            assert lk.shared and not lk.nested
        with pytest.raises(LockHeld) as e, env_lock(st, "production", "upgrade production --to assistant=1.1.0"):
            pass
        assert f"pid {r.pid}" in e.value.message and "stage create staging --from production" in e.value.message
        assert "being read" in e.value.message
        assert holder(st, "production")["shared"] is True
    finally:
        r.kill()
        r.wait()
    with env_lock(st, "production", "upgrade production"):  # the killed reader left nothing that blocks
        pass


def test_a_writer_excludes_readers(tmp_path):
    st = StateDir(tmp_path)
    w = _hold(tmp_path, "exclusive", "upgrade production --to assistant=1.1.0")
    try:
        with pytest.raises(LockHeld) as e, env_lock(st, "production", "stage sync staging", shared=True):
            pass
        assert f"pid {w.pid}" in e.value.message and "upgrade production" in e.value.message
    finally:
        w.kill()
        w.wait()


def test_guard_refuses_a_half_done_environment(tmp_path):
    from upgrade_infra.core.errors import BadInput
    from upgrade_infra.core.journal import Journal
    from upgrade_infra.core.lock import guard

    st = StateDir(tmp_path)
    j = Journal(st, "production")
    j.start("op-dead", "upgrade", command="upgrade production --to assistant=1.1.0")
    j.append("step-begin", "op-dead", step="switch_versions")
    for shared in (False, True):
        with pytest.raises(BadInput) as e, guard(st, "production", "env up production", shared=shared):
            pass
        assert e.value.exit_code == 2 and "upgrade-infra resume production" in e.value.fix
        assert "switch_versions" in e.value.message
    with guard(st, "production", "resume production", allow_open=True) as lk:  # resume/rollback may
        with guard(st, "production", "automatic rollback") as inner:  # nested: the caller's own op
            assert inner.nested
        assert not lk.shared
    j.append("op-end", "op-dead", outcome="recovered")
    with guard(st, "production", "env up production"):
        pass
