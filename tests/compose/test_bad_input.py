"""Bad input and faults on the ``compose`` backend, through the CLI: each gives one clear line on stderr,
exit 2 (bad input) or 3 (an operation failed), and leaves nothing half-done (no environment record, no
project containers or volumes for a first ``env up``; no operation journaled and the services untouched
for an upgrade or rollback refused).

- no engine reachable (``DOCKER_HOST`` at a dead socket): the line says how to start one;
- an image missing on the engine: named, never pulled under ``compose.pull: never`` (the default); with
  ``compose.pull: missing`` pulled first, and here (no registry is reachable) a clear line naming it;
- an invalid Compose file, for ``import compose`` and for a project run: Compose's own message with the
  file and line;
- a published port already taken; a project or volume rename (it would start on new, empty volumes);
- a container that exits during readiness: its last log lines are in the message.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from upgrade_infra.core.journal import Journal

from ..faultcli import cli
from .test_backend import EXAMPLE, PROJECT, leftovers, new_session

NOTHING = {"containers": [], "volumes": [], "networks": []}
CRASH = "Traceback: pa-assistant cannot read /data/config.toml (no such file)"


def error_line(r: subprocess.CompletedProcess) -> str:
    """The one error line (stderr may also hold ``warning:`` lines; never a traceback)."""
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def edit_stack(s, edit) -> None:
    yaml = YAML()
    data = yaml.load(s.stack.read_text())
    edit(data)
    with open(s.stack, "w") as f:
        yaml.dump(data, f)


def first_up_left_nothing(s, engine, project: str) -> None:
    assert s.state.load_record("production") is None and not s.state.env_dir("production").exists()
    assert not s.state.secrets_dir("production").exists()
    assert leftovers(engine, project) == NOTHING
    assert Journal(s.state, "production").operations() == []


@pytest.fixture
def fresh(docker_host):
    """A new copy of the reference Compose stack, never brought up (removed, with anything left, after)."""
    made = []

    def make(edit=None):
        s, root = new_session(edit)
        made.append((s, root))
        return s

    yield make
    for s, root in made:
        try:
            if s.state.load_record("production") is not None:
                s.env("production").destroy()
        finally:
            shutil.rmtree(root, ignore_errors=True)


class Prod:
    """The shared production: its stack file is restored after each case that edits it."""

    def __init__(self, s, rp: str) -> None:
        self.s, self.rp = s, rp
        self.stack_text = s.stack.read_text()
        self.compose_file = s.stack.parent / "docker-compose.yml"

    def restore_files(self) -> None:
        self.s.stack.write_text(self.stack_text)
        if not self.compose_file.is_symlink():
            self.compose_file.unlink()
            self.compose_file.symlink_to(EXAMPLE / "docker-compose.yml")

    def containers(self) -> dict[str, str]:
        """Container name -> its ID and start time: a refused operation restarts nothing."""
        c = self.s.env("production").engine.client()
        return {x.name: f"{x.id} {x.attrs['State']['StartedAt']}"
                for x in c.containers.list(all=True, filters={"label": f"{PROJECT}={self.s.env('production').project}"})}

    def untouched(self, before: dict[str, str], ops: int) -> None:
        env = self.s.env("production")
        assert env.record.versions == {"assistant": "1.0.0", "automations": "1.0.0"}
        assert len(Journal(self.s.state, "production").operations()) == ops  # nothing journaled
        assert self.containers() == before
        assert env.status().healthy


@pytest.fixture(scope="module")
def prod(docker_host):
    from upgrade_infra.restore import points as snapshots

    s, root = new_session(lambda d: d["policies"].update(watch_window_s=0))
    try:
        env = s.env("production")
        env.up(seed_mb=1)
        rp = snapshots.create(env, "clone", label="bad input")["restore_point"]["id"]
        yield Prod(s, rp)
    finally:
        try:
            s.env("production").destroy()
        finally:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def p(prod):
    yield prod
    prod.restore_files()


def dead_socket(tmp_path: Path) -> str:
    """A unix socket path nothing answers on (bound once, then closed: connections are refused)."""
    path = tmp_path / "dead.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()
    return f"unix://{path}"


# -- no engine ------------------------------------------------------------------------------------
def test_no_engine_first_up_says_how_to_start_one(fresh, docker_host, tmp_path):
    s = fresh()
    r = cli(s, "env", "up", "production", env={"DOCKER_HOST": dead_socket(tmp_path)})
    assert r.returncode == 2, r.stderr
    line = error_line(r)
    assert "no container engine" in line.lower() or "engine" in line.lower()
    assert "start one" in line and "DOCKER_HOST" in line, line
    assert json.loads(r.stdout)["error"] == "EngineUnreachable"
    first_up_left_nothing(s, docker_host, s.env("production").project)


def test_no_engine_upgrade_and_rollback_change_nothing(p, tmp_path):
    before, ops = p.containers(), len(Journal(p.s.state, "production").operations())
    dead = {"DOCKER_HOST": dead_socket(tmp_path)}
    for args in (["upgrade", "production", "--to", "assistant=1.1.0"], ["rollback", "production", "--to", p.rp]):
        r = cli(p.s, *args, env=dead)
        assert r.returncode == 2, (args, r.stderr)
        assert "start one" in error_line(r), r.stderr
    p.untouched(before, ops)


# -- images ---------------------------------------------------------------------------------------
def _declare(version: str):
    def edit(d):
        d["services"]["assistant"]["versions"][version] = {}
    return edit


def test_missing_image_is_named_and_never_pulled(p):
    before, ops = p.containers(), len(Journal(p.s.state, "production").operations())
    edit_stack(p.s, _declare("1.3.0"))  # declared, but no image upgrade-infra/pa-assistant:1.3.0 exists
    r = cli(p.s, "upgrade", "production", "--to", "assistant=1.3.0")
    assert r.returncode == 2, r.stderr
    line = error_line(r)
    assert "upgrade-infra/pa-assistant:1.3.0" in line and "compose.pull" in line and "nothing was stopped or changed" in line
    p.untouched(before, ops)


def test_pull_missing_without_a_registry_says_so(p):
    before, ops = p.containers(), len(Journal(p.s.state, "production").operations())

    def edit(d):
        _declare("1.3.0")(d)
        d["compose"]["pull"] = "missing"
    edit_stack(p.s, edit)
    r = cli(p.s, "upgrade", "production", "--to", "assistant=1.3.0")
    assert r.returncode == 3, r.stderr
    line = error_line(r)
    assert "upgrade-infra/pa-assistant:1.3.0" in line and "pulling it" in line and "nothing was stopped or changed" in line
    assert json.loads(r.stdout)["error"] == "ImagePullFailed"
    p.untouched(before, ops)


def test_pull_missing_on_first_up_leaves_nothing(fresh, docker_host):
    def edit(d):
        d["compose"]["pull"] = "missing"
        d["compose"]["services"]["automations"]["image"] = "upgrade-infra/no-such-image:{version}"
    s = fresh(edit)
    r = cli(s, "env", "up", "production")
    assert r.returncode == 3, r.stderr
    assert "upgrade-infra/no-such-image:1.0.0" in error_line(r)
    first_up_left_nothing(s, docker_host, s.env("production").project)


# -- invalid Compose file -------------------------------------------------------------------------
BROKEN = (EXAMPLE / "docker-compose.yml").read_text().replace(
    "    volumes:\n      - assistant-data:/data\n", "    volumez:\n      - assistant-data:/data\n")
BROKEN_LINE = BROKEN.splitlines().index("    volumez:") + 1


def test_invalid_compose_file_on_import(tmp_path):
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(BROKEN)
    out = tmp_path / "out" / "stack.yaml"
    out.parent.mkdir()
    r = subprocess.run([sys.executable, "-m", "upgrade_infra", "import", "compose", str(bad), "-o", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    line = error_line(r)
    assert f"{bad}:{BROKEN_LINE}:" in line and "additional properties 'volumez' not allowed" in line, line
    assert not out.exists()
    bad.write_text("services:\n  db:\n    image: postgres:15\n   environment:\n      A: 1\n")  # YAML syntax
    r = subprocess.run([sys.executable, "-m", "upgrade_infra", "import", "compose", str(bad), "-o", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and f"{bad}:4:" in error_line(r) and "yaml" in error_line(r), r.stderr
    assert not out.exists()


def test_invalid_compose_file_on_first_up(fresh, docker_host):
    s = fresh()
    user_file = s.stack.parent / "docker-compose.yml"
    user_file.unlink()
    user_file.write_text(BROKEN)
    r = cli(s, "env", "up", "production")
    assert r.returncode == 2, r.stderr
    line = error_line(r)
    assert f"docker-compose.yml:{BROKEN_LINE}:" in line and "'volumez' not allowed" in line, line
    first_up_left_nothing(s, docker_host, s.env("production").project)


def test_invalid_compose_file_refuses_an_upgrade(p):
    before, ops = p.containers(), len(Journal(p.s.state, "production").operations())
    p.compose_file.unlink()
    p.compose_file.write_text(BROKEN)
    r = cli(p.s, "upgrade", "production", "--to", "assistant=1.1.0")
    assert r.returncode == 2, r.stderr
    assert f"docker-compose.yml:{BROKEN_LINE}:" in error_line(r)
    p.restore_files()
    p.untouched(before, ops)


# -- ports ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("what", ["postgres", "automations"])
def test_published_port_taken(fresh, docker_host, what):
    """The database's port: refused before anything is created; a service's: refused after the database
    was made, which the first up then removes."""
    s = fresh()
    port = s.env("production").ports[what]
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", port))
        holder.listen()
        r = cli(s, "env", "up", "production")
    assert r.returncode == 2, r.stderr
    line = error_line(r)
    assert f"port {port} ({what}" in line and "taken by" in line, line
    first_up_left_nothing(s, docker_host, s.env("production").project)


# -- renames --------------------------------------------------------------------------------------
def test_renamed_stack_is_refused(p, docker_host):
    before, ops = p.containers(), len(Journal(p.s.state, "production").operations())
    old = p.s.env("production").project
    edit_stack(p.s, lambda d: d.update(name=d["name"] + "-renamed"))
    for args in (["env", "up", "production"], ["upgrade", "production", "--to", "assistant=1.1.0"],
                 ["rollback", "production", "--to", p.rp]):
        r = cli(p.s, *args)
        assert r.returncode == 2, (args, r.stderr)
        line = error_line(r)
        assert "new, empty volumes" in line and old in line, line
    assert leftovers(docker_host, f"{old[: -len('-production')]}-renamed-production") == NOTHING
    p.restore_files()
    p.untouched(before, ops)


def test_renamed_database_volume_is_refused(p, docker_host):
    before, ops = p.containers(), len(Journal(p.s.state, "production").operations())
    env = p.s.env("production")
    edit_stack(p.s, lambda d: d["compose"]["postgres"].update(volume="pgdata2"))
    for args in (["env", "up", "production"], ["upgrade", "production", "--to", "assistant=1.1.0"]):
        r = cli(p.s, *args)
        assert r.returncode == 2, (args, r.stderr)
        line = error_line(r)
        assert "new, empty volume" in line and f"{env.project}_pgdata" in line, line
    names = {v.name for v in docker_host.client().volumes.list()}
    assert f"{env.project}_pgdata2" not in names
    p.restore_files()
    p.untouched(before, ops)


# -- a container that exits while it is awaited ---------------------------------------------------
def test_container_exiting_during_readiness_shows_its_last_log_lines(fresh, docker_host):
    def edit(d):  # release 1.0.0 of the assistant, started with a command that fails at once
        d["services"]["assistant"]["versions"]["1.0.0"] = {
            "command": f"sh -c 'echo starting; echo \"{CRASH}\" >&2; exit 3'"}
    s = fresh(edit)
    r = cli(s, "env", "up", "production")
    assert r.returncode == 3, r.stderr
    line = error_line(r)
    assert "assistant (1.0.0)" in line and "not ready" in line and CRASH in line and "starting" in line, line
    assert json.loads(r.stdout)["error"] == "ServiceNotReady"
    first_up_left_nothing(s, docker_host, s.env("production").project)
