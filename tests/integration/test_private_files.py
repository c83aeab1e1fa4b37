"""Issue 11, items 3, 4 and 10 on real clusters and services: what the tool writes is private, works from
a 0700 directory (PostgreSQL's home in a root-owned 0711 base), a failing service's secret stays out of
the journal and history, and staging services run as a user that cannot reach production.

Each test builds its own stack copy (tiny stack: seconds) and removes it; none relies on another.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from upgrade_infra.backends.local.postgres import server_user
from upgrade_infra.core.journal import Journal
from upgrade_infra.operations import upgrade
from upgrade_infra.operations.session import Session, stop_everything
from upgrade_infra.restore import points as snapshots
from upgrade_infra.staging import lifecycle as staging
from upgrade_infra.validation.engine import validate

from ..conftest import PA_STACK, REPO, write_stack

STAGING_USER = "upgrade-infra-stg"  # environments.local.STAGING_USER
TINY = REPO / "tests" / "data" / "tiny" / "stack.yaml"
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the server user and 0700 dirs matter when run as root")


@contextmanager
def stack_in_private_dir(source: Path, edit=None, mode: int = 0o700):
    """A stack copy inside a fresh ``mktemp -d`` directory (0700, like root's home), default state dir."""
    root = Path(tempfile.mkdtemp(prefix="uinfra-private-"))
    os.chmod(root, mode)
    s = Session(write_stack(root / "stack", source, edit))
    try:
        yield s
    finally:
        stop_everything(s)
        for name in s.state.env_names():
            s.env(name).destroy()
        shutil.rmtree(root, ignore_errors=True)


# -- item 10: env up from a clone inside a 0700 directory ---------------------------------------------
def test_env_up_from_a_0700_directory_and_destroy_removes_everything():
    with stack_in_private_dir(TINY) as s:
        env = s.env("production")
        env.up()
        assert env.status().healthy
        link = env.dir / "pg"
        home = link.resolve()
        # PostgreSQL's files live in a root-owned 0711 base that belongs to this state dir ...
        assert link.is_symlink() and home.is_relative_to(s.state.pg_base())
        assert (s.state.pg_base() / "state-dir").read_text().strip() == str(s.state.root)
        for d in (s.state.pg_base(), home):
            st = os.stat(d)
            assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o711
        assert env.cluster.data_dir.is_relative_to(home) and env.cluster.running()
        # ... and the user's own directories were not loosened
        assert stat.S_IMODE(os.stat(s.stack.parent.parent).st_mode) == 0o700
        env.destroy()
        assert not s.state.pg_base().exists() and not env.dir.exists()


# -- item 3: every file a reference run creates is private ----------------------------------------------
def _modes(*roots: Path) -> dict[str, tuple[int, str]]:
    out = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
                st = os.lstat(name)
                if stat.S_ISLNK(st.st_mode):
                    continue
                out[name] = (stat.S_IMODE(st.st_mode), pwd.getpwuid(st.st_uid).pw_name)
    return out


def _allowed(path: str, mode: int, s: Session) -> bool:
    """No group/other bits, except: directories PostgreSQL's server user traverses (0711, root's: the state
    dir, envs/, envs/<env>/, the cluster's home and its base) and the server's unix socket (0700 set by
    unix_socket_permissions; a socket's bits cannot be tightened further)."""
    if mode & 0o077 == 0:
        return True
    p = Path(path)
    if stat.S_ISSOCK(os.lstat(p).st_mode) and mode == 0o700:
        return True
    base = s.state.pg_base() if hasattr(s.state, "pg_base") else Path("/nonexistent/base")
    traverse = {s.state.root, s.state.root / "envs", base.parent, base, base / "envs"}
    traverse |= {s.state.env_dir(n) for n in s.state.env_names()}
    traverse |= {base / "envs" / n for n in s.state.env_names()} | {base / "envs" / n / "pg" for n in s.state.env_names()}
    return mode == 0o711 and p.is_dir() and p in traverse


@pytest.mark.parametrize("parent_mode", [0o700, 0o711], ids=["in-0700-dir", "in-0711-dir"])
def test_reference_run_files_are_private(parent_mode):
    with stack_in_private_dir(PA_STACK / "stack.yaml", mode=parent_mode) as s:
        env = s.env("production")
        env.up(seed_mb=1)
        report = validate(env, ["api"], report_dir=s.state.root / "reports" / "validation" / "run")
        assert report.passed, [r.message for r in report.failures()]
        rp_id = snapshots.create(env, label="modes")["restore_point"]["id"]
        modes = _modes(s.state.root, *([s.state.pg_base()] if parent_mode == 0o700 else []))
        assert len(modes) > 100
        for must in ("envs/production/logs/assistant.log", "envs/production/env.json", "journal",
                     "reports/validation/run/results.json", f"restore-points/{rp_id}"):
            assert any(Path(p).is_relative_to(s.state.root / must) for p in modes), must
        loose = {p: (oct(m), who) for p, (m, who) in modes.items() if not _allowed(p, m, s)}
        assert loose == {}
        logs = [p for p in modes if p.endswith(".log")]
        assert logs and all(modes[p][0] == 0o600 for p in logs)
        assert all(modes[str(Path(p).parent)][0] == 0o700 for p in logs if "/logs/" in p)


# -- item 4: a failing service's secret stays out of the journal and `--json history` -----------------
LEAKY = ("{python} -c \"import os, sys; print('config error: token=' + os.environ['API_TOKEN'], flush=True); "
         "sys.exit(1)\"")


def _leaky(data):
    data["secrets"] = {"api_token": {"generate": True}}
    web = data["services"]["web"]
    web["env"]["API_TOKEN"] = "{secrets.api_token}"
    web["versions"]["leaky"] = {"command": LEAKY}


def test_failing_service_secret_not_in_journal_or_history():
    with stack_in_private_dir(TINY, _leaky, mode=0o711) as s:
        env = s.env("production")
        env.up()
        token = env.secrets()["api_token"]
        res = upgrade.upgrade(env, {"web": "leaky"})
        assert res["outcome"] == "rolled-back" and token not in json.dumps(res, default=str)
        # the same through the CLI, in a fresh process: neither its output nor its error line has it
        cli = [sys.executable, "-m", "upgrade_infra", "--stack", str(s.stack)]
        up = subprocess.run([*cli, "--json", "upgrade", "production", "--to", "web=leaky"],
                            capture_output=True, text=True, timeout=300)
        assert "rolled-back" in up.stdout and token not in up.stdout + up.stderr
        log = env.log_path("web")
        assert token in log.read_text()  # the service did print it
        raw = Journal(env.state, "production").path.read_text()
        assert "config error: token=" in raw and token not in raw
        # a fresh process (nothing registered in memory) prints history from the journal
        out = subprocess.run([*cli, "--json", "history"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        ops = json.loads(out.stdout)
        assert ops and token not in out.stdout and "config error: token=" in out.stdout
        assert stat.S_IMODE(log.stat().st_mode) == 0o600  # the only place it is: the private service log


# -- item 4 (defence in depth): staging services cannot reach production --------------------------------
def _ids(pid: int) -> tuple[int, int, str]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    field = {line.split(":")[0]: line.split(":")[1].split() for line in status}
    return int(field["Uid"][0]), int(field["Gid"][0]), " ".join(field["Groups"])


SYSTEM_PYTHON = "/usr/bin/python3"  # reachable by any user (this tool's venv may sit in root's 0700 home)


def _system_python(data):
    for svc in data["services"].values():
        svc["command"] = svc["command"].replace("{python}", SYSTEM_PYTHON)


@pytest.mark.skipif(not os.path.exists(SYSTEM_PYTHON), reason="needs a Python other users can run")
def test_staging_services_cannot_reach_production():
    with stack_in_private_dir(TINY, _system_python, mode=0o711) as s:
        prod = s.env("production")
        prod.up()
        os.chmod(s.stack.parent, 0o755)  # the user's stack dir: the staging user runs app.py from it
        staging.create(s, "stg")
        stg = s.env("stg")
        assert stg.status().healthy
        uid, gid, groups = _ids(stg.processes["web"]["pid"])
        assert uid != 0 and uid == pwd.getpwnam(STAGING_USER).pw_uid and groups == ""
        assert _ids(prod.processes["web"]["pid"])[0] == 0  # production is untouched
        probe = (  # what a compromised staging service would try: read production's dirs, use its socket
            "import os, socket, sys\n"
            "bad = []\n"
            "for p in sys.argv[1:-1]:\n"
            "    try:\n"
            "        os.listdir(p); bad.append(p)\n"
            "    except PermissionError:\n"
            "        pass\n"
            "try:\n"
            "    socket.socket(socket.AF_UNIX).connect(sys.argv[-1]); bad.append('socket')\n"
            "except PermissionError:\n"
            "    pass\n"
            "print(bad)\n")
        c = prod.cluster
        targets = [str(c.data_dir), str(c.socket_dir), str(prod.data_dir("web")), str(prod.dir / "logs"),
                   str(s.state.secrets_dir("production"))]
        argv = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", SYSTEM_PYTHON, "-c", probe,
                *targets, str(c.socket_dir / f".s.PGSQL.{c.port}")]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd="/")
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "[]"
        # the same probe as root reaches them: the refusals above come from the user, not the paths
        root = subprocess.run(argv[4:], capture_output=True, text=True, timeout=60)
        assert "socket" in root.stdout and str(c.data_dir) in root.stdout
        assert server_user() != STAGING_USER


@pytest.mark.parametrize("strategy", ["fs", "clone"])
def test_rollback_from_a_0700_directory(strategy):
    """A failed upgrade rolls back there too: fs restore points and quarantines of the cluster's data
    dir must also be where the server user can reach them."""
    with stack_in_private_dir(TINY) as s:
        env = s.env("production")
        env.up()
        res = upgrade.upgrade(env, {"web": "broken"}, strategy=strategy)
        assert res["outcome"] == "rolled-back" and res["rollback"]["verified"], res
        assert env.status().healthy and env.record.versions["web"] == "1.0"
        env.destroy()
        assert not (s.state.root / "envs" / "production").exists()
