"""Stop means stopped: a service is stopped when its whole process group is gone and its ports are
free, also when the app closes like some Node/Python apps do (its main thread exits, the process shows
as a zombie, while another thread keeps the listening socket open a little longer). A rollback or
resume that still cannot start a service says what holds the port and that `resume` finishes (exit 3).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from upgrade_infra.core import runner
from upgrade_infra.core.journal import Journal
from upgrade_infra.operations import upgrade
from upgrade_infra.operations.session import Session
from upgrade_infra.restore.fingerprint import fingerprint
from upgrade_infra.stack.ports import holder_of

from ..conftest import free_base

LINGER = """
import ctypes, os, signal, socket, threading, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", {port})); s.listen()
def hold():
    time.sleep({hold}); s.close(); os._exit(0)
def term(*_):
    threading.Thread(target=hold).start()
    ctypes.CDLL(None).pthread_exit(None)  # the main thread exits: the process shows as a zombie
signal.signal(signal.SIGTERM, term)
print("READY", flush=True)
time.sleep(60)
"""


def _busy(port: int) -> str | None:
    """Connect and bind, independently of the tool's own check."""
    with socket.socket() as c:
        c.settimeout(0.5)
        if c.connect_ex(("127.0.0.1", port)) == 0:
            return "accepts connections"
    with socket.socket() as b:
        b.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            b.bind(("127.0.0.1", port))
        except OSError:
            return "cannot be bound"
    return None


def _threads_left(pid: int) -> list[str]:
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    return [t for t in tasks if Path(f"/proc/{pid}/task/{t}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]


def _cli(s: Session, *args: str, fault: str | None = None, as_json: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "UPGRADE_INFRA_FAULT"}
    env["COLUMNS"] = "250"
    if fault:
        env["UPGRADE_INFRA_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "upgrade_infra", "--stack", str(s.stack), "--state-dir",
                           str(s.state.root), *(["--json"] if as_json else []), *args], capture_output=True,
                          text=True, timeout=300, env=env)


def _linger(tmp_path: Path, port: int, hold: float):
    """A process on ``port`` whose thread keeps the socket ``hold`` s after its main thread exits; once it listens."""
    log = tmp_path / "linger.log"
    h = runner.spawn([sys.executable, "-c", LINGER.format(port=port, hold=hold)], env=runner.base_env(),
                     cwd=tmp_path, log_path=log)
    deadline = time.monotonic() + 10
    while "READY" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    return h


def test_stop_waits_for_a_thread_holding_the_socket_after_the_main_thread_exited(tmp_path):
    port = free_base(1)
    h = _linger(tmp_path, port, hold=0.3)
    assert _busy(port) == "accepts connections"
    t0 = time.monotonic()
    assert runner.stop_process(h, timeout=5) == "terminated"
    waited = time.monotonic() - t0
    # the old code counted the zombie main thread as "exited" and returned at once, socket still open
    assert not _threads_left(h.pid)
    assert _busy(port) is None and holder_of(port) is None
    assert 0.25 < waited < 3


def test_holder_of_names_a_process_whose_main_thread_exited(tmp_path):
    port = free_base(1)
    h = _linger(tmp_path, port, hold=2)
    os.kill(h.pid, 15)
    deadline = time.monotonic() + 5
    while runner.ProcessHandle.alive(h) and time.monotonic() < deadline:  # until the main thread is gone
        time.sleep(0.02)
    held = holder_of(port)
    assert held and f"pid {h.pid}" in held and "main thread has exited" in held, held
    runner.stop_process(h, timeout=5)
    assert holder_of(port) is None


def test_rollback_of_an_app_that_closes_its_socket_late_succeeds(ledger):
    s = ledger
    env = s.env("production")
    before = fingerprint(env)
    for i in range(3):
        up = upgrade.upgrade(s.env("production"), {"ledger": "linger"}, watch_s=0)
        assert up["outcome"] == "succeeded", up.get("error")
        r = _cli(s, "rollback", "production")
        assert r.returncode == 0, f"round {i + 1}: {r.stderr[-800:]}"
        res = json.loads(r.stdout)
        assert res["verified"] and res["versions"] == {"ledger": "1.0"}
        env = s.env("production")
        assert fingerprint(env).equal(before)
        assert env.status().healthy
    assert Journal(s.state, "production").incomplete() is None


def test_resume_that_cannot_start_names_the_holder_and_exits_3(ledger):
    s = ledger
    before = fingerprint(s.env("production"))
    up = upgrade.upgrade(s.env("production"), {"ledger": "2.0"}, watch_s=0)
    assert up["outcome"] == "succeeded"
    killed = _cli(s, "rollback", "production", fault="rollback.start_services")
    assert killed.returncode == -9
    port = s.env("production").ports["ledger"]
    thief = subprocess.Popen([sys.executable, "-c", "import socket, time; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
                              f"s.bind(('127.0.0.1', {port})); s.listen(); print('READY', flush=True); "
                              "time.sleep(120)"], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert thief.stdout.readline().strip() == "READY"
        t0 = time.monotonic()
        r = _cli(s, "resume", "production")
        took = time.monotonic() - t0
        assert r.returncode == 3, r.stderr  # not 2 ("bad input, nothing changed"): the databases were swapped
        err = json.loads(r.stdout.strip().splitlines()[-1])
        assert err["error"] in ("StepFailed", "ServiceStartBlocked")
        assert f"pid {thief.pid}" in err["message"] and "upgrade-infra resume production" in err["fix"]
        assert "already switched" in err["message"]
        assert took >= s.env("production").manifest.policies.stop_timeout_s  # it waited and retried first
    finally:
        thief.kill()
        thief.wait()
    r = _cli(s, "resume", "production", as_json=False)
    assert r.returncode == 0, r.stderr
    # the summary covers the whole rollback, not only the steps run by this resume
    assert "Nones" not in r.stdout and "database step 0." in r.stdout, r.stdout
    assert "steps done before the resume" in r.stdout
    rb = Journal(s.state, "production").operations()[-1]
    assert rb.kind == "rollback" and rb.outcome == "succeeded"
    for name in ("preflight", "swap_databases", "start_services", "verify", "replenish"):
        assert f" {name} " in r.stdout or f"│ {name}" in r.stdout, name
    env = s.env("production")
    assert env.record.versions == {"ledger": "1.0"} and fingerprint(env).equal(before)
    assert env.status().healthy and Journal(s.state, "production").incomplete() is None
