"""The subprocess runner on real processes: detached services, group stop, no orphans."""

from __future__ import annotations

import sys
import time

import psutil

from upgrade_infra.core import runner

IGNORES_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('READY', flush=True); time.sleep(60)"
WITH_CHILD = "import subprocess, time; subprocess.Popen(['sleep', '60']); print('READY', flush=True); time.sleep(60)"


def _spawn(code: str, tmp_path, name: str) -> runner.ProcessHandle:
    h = runner.spawn([sys.executable, "-c", code], env=runner.base_env(), cwd=tmp_path, log_path=tmp_path / name)
    deadline = time.monotonic() + 10
    while "READY" not in (tmp_path / name).read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    return h


def test_group_stop_terminates_kills_and_leaves_no_orphans(tmp_path):
    polite = _spawn(WITH_CHILD, tmp_path, "a.log")
    stubborn = _spawn(IGNORES_TERM, tmp_path, "b.log")
    child = [c.pid for c in psutil.Process(polite.pid).children()]
    t0 = time.monotonic()
    how = runner.stop_processes([polite, stubborn], timeout=1.0)
    elapsed = time.monotonic() - t0
    assert how == ["terminated", "killed"]
    assert elapsed < 4  # one shared wait, not one per process
    assert not polite.alive() and not stubborn.alive()
    assert not [p for p in child if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def test_stopping_a_dead_or_reused_pid_is_harmless(tmp_path):
    h = runner.ProcessHandle(pid=1, create_time=0.0)  # pid 1 exists but was not started by us
    assert runner.stop_process(h) == "not running"
    assert psutil.pid_exists(1)


def test_run_reports_exit_code_and_tail():
    res = runner.run([sys.executable, "-c", "import sys; print('x'); sys.exit(3)"], check=False)
    assert res.returncode == 3 and res.stdout.strip() == "x"
