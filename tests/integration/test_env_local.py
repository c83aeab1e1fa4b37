"""The local backend on real PostgreSQL and real processes: up, status, down, no orphans, bad input."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import psutil
import pytest

from upgrade_infra.core import sql
from upgrade_infra.core.errors import PortInUse, ServiceNotReady
from upgrade_infra.operations.session import Session

from ..conftest import REPO, stop_all, write_stack

TINY = REPO / "tests" / "data" / "tiny" / "stack.yaml"


@pytest.fixture
def tiny(private_tmp):
    s = Session(write_stack(private_tmp / "stack", TINY), private_tmp / "state")
    yield s
    stop_all(s)


def cli(s: Session, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "upgrade_infra", "--stack", str(s.stack), "--state-dir",
                           str(s.state.root), *args], capture_output=True, text=True, timeout=120)


def test_up_status_down_leaves_no_process(tiny):
    r = cli(tiny, "--json", "env", "up", "production")
    assert r.returncode == 0, r.stderr
    up = json.loads(r.stdout)
    assert up["created"] and up["status"]["healthy"]
    pids = [s["pid"] for s in up["status"]["services"]]
    env = tiny.env("production")
    assert sql.fetch_value(env.conninfo("app"), "SELECT current_database()") == "app"
    # each service sees only its own database credentials; the role can log in over TCP
    url = env.db_info()["app"]["url"]
    assert sql.fetch_value(url, "SELECT current_user") == "app"

    st = json.loads(cli(tiny, "--json", "status").stdout)
    assert [e["name"] for e in st["environments"]] == ["production"]

    r = cli(tiny, "env", "down", "production")
    assert r.returncode == 0, r.stderr
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not any(str(tiny.state.root) in " ".join(p.cmdline()) for p in psutil.process_iter()
                   if p.is_running() and p.status() != psutil.STATUS_ZOMBIE)
    assert cli(tiny, "env", "status", "production").returncode == 1  # down is unhealthy: exit 1


def test_up_is_idempotent_and_keeps_data(tiny):
    env = tiny.env("production")
    env.up()
    sql.execute(env.conninfo("app"), "CREATE TABLE t (x int)", "INSERT INTO t VALUES (42)")
    env.down()
    again = tiny.env("production").up()
    assert again["created"] is False
    assert sql.fetch_value(env.conninfo("app"), "SELECT x FROM t") == 42


def test_port_taken_names_the_holder(tiny):
    port = tiny.env("production").ports["web"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        with pytest.raises(PortInUse, match=rf"port {port} \(web of environment 'production'\) is taken by pid"):
            tiny.env("production").up()
        r = cli(tiny, "env", "up", "production")
        assert r.returncode == 2 and "is taken by" in r.stderr


def test_never_ready_reports_last_log_lines_and_stops_it(tiny):
    env = tiny.env("production")
    env.record.versions["web"] = "broken"
    with pytest.raises(ServiceNotReady, match="cannot reach the message broker") as e:
        env.up()
    assert "not ready after" in str(e.value)


def test_unknown_environment_is_bad_input(tiny):
    r = cli(tiny, "env", "up", "nope")
    assert r.returncode == 2 and "unknown environment 'nope'" in r.stderr and "fix:" in r.stderr


def test_state_dir_not_writable(tiny, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = subprocess.run([sys.executable, "-m", "upgrade_infra", "--stack", str(tiny.stack), "--state-dir",
                        str(blocker / "state"), "env", "up", "production"], capture_output=True, text=True)
    assert r.returncode == 2 and "not writable" in r.stderr


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_env_destroy_needs_yes_then_removes_everything(tiny):
    """`env destroy NAME` (production included): without --yes exit 2 and nothing touched; with --yes the
    processes, cluster, data dirs, secrets and restore points are gone, and `env up` starts from nothing."""
    assert cli(tiny, "env", "up", "production").returncode == 0
    env = tiny.env("production")
    assert cli(tiny, "snapshot", "create", "production").returncode == 0
    pids = [s.pid for s in env.status().services]
    r = cli(tiny, "env", "destroy", "production")
    assert r.returncode == 2 and "pass --yes to confirm" in r.stderr, r.stderr
    assert tiny.env("production").status().healthy  # untouched
    r = cli(tiny, "--json", "env", "destroy", "production", "--yes")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["destroyed"] == "production" and len(out["restore_points_deleted"]) == 1
    assert not [p for p in pids if p and running(p)]  # a zombie (not yet reaped by PID 1) is not running
    assert tiny.state.load_record("production") is None and not env.dir.exists()
    assert not tiny.state.secrets_dir("production").exists()
    assert not any((tiny.state.root / "restore-points").glob("*"))
    r = cli(tiny, "--json", "env", "up", "production")
    assert r.returncode == 0 and json.loads(r.stdout)["created"], r.stderr
