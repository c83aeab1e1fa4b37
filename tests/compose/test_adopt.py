"""``env adopt``: a Compose project the user started from the example file (`docker compose -p NAME up -d
--wait`, secrets and ports in its environment) taken over without recreating anything, then driven under
the user's names: status, restore point, upgrade, rollback (databases and every named volume back), down,
destroy (the user's volumes kept unless asked), the rename guard; and every refusal (exit 2, one line,
nothing written). Real containers on the private engine; each test starts its own project.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys

import pytest

from .conftest import Project, stack_env
from .test_backend import compose_images, leftovers, new_session  # noqa: F401

VOLUME_TARGETS = {"assistant": "/data", "automations": "/data"}


class UserStack:
    def __init__(self, s, root, project: Project) -> None:
        self.s, self.root, self.p = s, root, project

    @property
    def name(self) -> str:
        return self.p.name

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "upgrade_infra", "--stack", str(self.s.stack), "--state-dir",
                               str(self.s.state.root), *args], capture_output=True, text=True, timeout=900)

    def containers(self, engine) -> dict[str, tuple[str, str]]:
        """service -> (container ID, State.StartedAt) of the project's containers."""
        out = {}
        for c in engine.client().containers.list(all=True, filters={"label": f"com.docker.compose.project={self.name}"}):
            out[c.labels["com.docker.compose.service"]] = (c.id, c.attrs["State"]["StartedAt"])
        return out


@pytest.fixture
def user_stack(compose_engine, compose_images, cli, monkeypatch):  # noqa: F811
    """The example Compose file started by hand as a unique project (stack.yaml's compose.project names it),
    with the user's secrets exported; everything it leaves is removed at the end."""
    project = f"uixad-{secrets.token_hex(3)}"

    def edit(data):
        data["compose"]["project"] = project

    s, root = new_session(edit)
    env = stack_env()
    monkeypatch.setenv("POSTGRES_PASSWORD", env["POSTGRES_PASSWORD"])
    monkeypatch.setenv("PA_SECRET_KEY", env["PA_SECRET_KEY"])
    p = Project(cli, project, env)
    p.up()
    u = UserStack(s, root, p)
    try:
        yield u
    finally:
        client = compose_engine.client()
        try:
            for name in (f"{s.manifest.name}-staging",):
                for c in client.containers.list(all=True, filters={"label": f"com.docker.compose.project={name}"}):
                    c.remove(force=True)
                for v in client.volumes.list(filters={"label": f"com.docker.compose.project={name}"}):
                    v.remove(force=True)
            p.down()
            ids = _ids(s)
            for v in client.volumes.list():
                if v.name.startswith(("uirp-", "uiq-")) and any(x in v.name for x in ids):
                    v.remove(force=True)
            for net in client.networks.list(filters={"label": f"com.docker.compose.project={project}"}):
                net.remove()
        finally:
            shutil.rmtree(root, ignore_errors=True)


def _ids(s) -> list[str]:
    from upgrade_infra.restore import points as snapshots
    from upgrade_infra.restore import quarantine

    return ([p.id.removeprefix("rp-") for p in snapshots.list_points(s.state)]
            + [q["op"] for q in quarantine.list_all(s.state)])


def one_line_refusal(r: subprocess.CompletedProcess, *words: str) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def nothing_written(u: UserStack, name: str = "production") -> None:
    assert u.s.state.load_record(name) is None
    assert not u.s.state.env_dir(name).exists()
    assert not (u.s.state.root / "secrets" / name).exists()


def volume_files(engine, volume: str) -> dict[str, str]:
    """path -> md5 of every file in a volume, read by a throwaway container."""
    out = engine.client().containers.run(
        "upgrade-infra/debian:bookworm", ["sh", "-c", "cd /v && find . -type f -exec md5sum {} + | sort -k2"],
        volumes={volume: {"bind": "/v", "mode": "ro"}}, remove=True, network_disabled=True, entrypoint=[])
    return {line.split()[1]: line.split()[0] for line in out.decode().splitlines() if line.strip()}


def plant(engine, volume: str, name: str, text: str) -> None:
    engine.client().containers.run("upgrade-infra/debian:bookworm", ["sh", "-c", f"mkdir -p /v/planted && "
                                   f"printf %s '{text}' > /v/planted/{name}"],
                                   volumes={volume: {"bind": "/v", "mode": "rw"}}, remove=True,
                                   network_disabled=True, entrypoint=[])


# -- adopting ------------------------------------------------------------------------------------
def test_adopt_recreates_and_restarts_nothing(user_stack, compose_engine):  # noqa: F811
    u = user_stack
    before = u.containers(compose_engine)
    assert set(before) == {"postgres", "assistant", "automations"}
    r = u.cli("--json", "env", "adopt", "production")
    assert r.returncode == 0, r.stderr
    assert u.containers(compose_engine) == before  # same IDs, same State.StartedAt
    rec = u.s.state.load_record("production")
    a = rec.backend_state["adopted"]
    assert rec.backend == "compose" and rec.backend_state["project"] == u.name
    assert rec.versions == {"assistant": "1.0.0", "automations": "1.0.0"}
    assert a["volumes"] == {"pgdata": f"{u.name}_pgdata", "assistant-data": f"{u.name}_assistant-data",
                            "automations-data": f"{u.name}_automations-data"}
    assert a["containers"] == {s: f"{u.name}-{s}-1" for s in ("postgres", "assistant", "automations")}
    assert a["ports"] == {"postgres": int(u.p.env["POSTGRES_PORT"]), "assistant": int(u.p.env["ASSISTANT_PORT"]),
                          "automations": int(u.p.env["AUTOMATIONS_PORT"])}
    running = compose_engine.client().containers.get(before["assistant"][0])
    assert a["images"]["assistant"] == {"reference": "upgrade-infra/pa-assistant:1.0.0", "id": running.attrs["Image"],
                                        "version": "1.0.0"}
    # the password is never on argv or in what is printed, nor in the record
    assert os.environ["POSTGRES_PASSWORD"] not in r.stdout + r.stderr
    assert os.environ["POSTGRES_PASSWORD"] not in (u.s.state.env_dir("production") / "env.json").read_text()


def test_adopted_status_is_healthy(user_stack, compose_engine):  # noqa: F811
    u = user_stack
    assert u.cli("env", "adopt", "production").returncode == 0
    r = u.cli("--json", "env", "status", "production")
    assert r.returncode == 0, r.stdout + r.stderr
    import json

    st = json.loads(r.stdout)
    assert st["healthy"] and st["postgres"]["project"] == u.name and st["postgres"]["volume"] == f"{u.name}_pgdata"
    assert set(st["databases"]) == {"assistant", "automations"}
    assert {s["name"]: s["port"] for s in st["services"]} == {
        "assistant": int(u.p.env["ASSISTANT_PORT"]), "automations": int(u.p.env["AUTOMATIONS_PORT"])}


def test_upgrade_then_rollback_brings_databases_and_every_volume_back(user_stack, compose_engine):  # noqa: F811
    from upgrade_infra.backends.seed import run_seed
    from upgrade_infra.operations import rollback, upgrade
    from upgrade_infra.restore import points as snapshots
    from upgrade_infra.restore.fingerprint import fingerprint

    u = user_stack
    assert u.cli("env", "adopt", "production").returncode == 0
    env = u.s.env("production")
    run_seed(env, 2)  # data as the user's own roles write it (a one-off container on the user's network)
    vols = [f"{u.name}_assistant-data", f"{u.name}_automations-data"]
    for i, v in enumerate(vols):
        plant(compose_engine, v, "before.txt", f"planted in volume {i}")
    before = fingerprint(env)
    files_before = {v: volume_files(compose_engine, v) for v in vols}
    assert all(any(k.endswith("planted/before.txt") for k in f) for f in files_before.values())

    up = upgrade.upgrade(env, {"assistant": "1.1.0", "automations": "1.1.0"}, strategy="clone", watch_s=0)
    assert up["outcome"] == "succeeded", up
    env = u.s.env("production")
    assert env.record.versions == {"assistant": "1.1.0", "automations": "1.1.0"}
    assert not fingerprint(env).equal(before)
    rp = snapshots.get(env.state, up["restore_point"]) if isinstance(up["restore_point"], str) else \
        snapshots.get(env.state, up["restore_point"]["id"])
    assert set(rp.volumes) == {"assistant-data", "automations-data"}
    assert {v["live"] for v in rp.volumes.values()} == set(vols)
    assert set(rp.images) == {"assistant", "automations"} and rp.data_dirs == {}
    assert snapshots.verify(env, rp) == []
    # the upgraded containers run on the user's volumes, under the user's names
    c = compose_engine.client().containers.get(f"{u.name}-assistant-1")
    assert {m["Name"] for m in c.attrs["Mounts"] if m["Type"] == "volume"} == {vols[0]}
    for v in vols:
        plant(compose_engine, v, "after.txt", "written after the upgrade")

    rb = rollback.rollback(env)
    assert rb["verified"], rb
    env = u.s.env("production")
    assert env.record.versions == {"assistant": "1.0.0", "automations": "1.0.0"}
    assert fingerprint(env).equal(before)
    assert {v: volume_files(compose_engine, v) for v in vols} == files_before
    assert env.status().healthy
    assert set(leftovers(compose_engine, u.name)["volumes"]) >= {*vols, f"{u.name}_pgdata"}


def test_stage_create_from_adopted_production(user_stack, compose_engine):  # noqa: F811
    u = user_stack
    assert u.cli("env", "adopt", "production").returncode == 0
    r = u.cli("--json", "stage", "create", "staging")
    assert r.returncode == 0, r.stdout + r.stderr
    st = u.s.env("staging")
    assert st.project == f"{u.s.manifest.name}-staging" and not st.adopted
    assert st.status().healthy
    assert u.s.env("production").status().healthy
    r = u.cli("stage", "destroy", "staging")
    assert r.returncode == 0, r.stderr


# -- refusals: exit 2, one line, nothing written ----------------------------------------------------
def test_refuses_a_project_that_does_not_exist(user_stack):
    u = user_stack
    r = u.cli("env", "adopt", "production", "--project", "uixad-nothing-here")
    one_line_refusal(r, "compose.project")  # --project must agree with stack.yaml
    nothing_written(u)
    u.s.stack.write_text(u.s.stack.read_text().replace(f"project: {u.name}", "project: uixad-nothing-here"))
    r = u.cli("env", "adopt", "production")
    one_line_refusal(r, "uixad-nothing-here", "does not exist")
    nothing_written(u)


def test_refuses_a_project_that_is_not_running(user_stack):
    u = user_stack
    u.p.cli.run(u.name, u.p.files, "stop", env=u.p.env)
    r = u.cli("env", "adopt", "production")
    one_line_refusal(r, "not running")
    nothing_written(u)


def test_refuses_an_existing_environment(user_stack):
    u = user_stack
    assert u.cli("env", "adopt", "production").returncode == 0
    rec = (u.s.state.env_dir("production") / "env.json").read_text()
    r = u.cli("env", "adopt", "production")
    one_line_refusal(r, "already exists")
    assert (u.s.state.env_dir("production") / "env.json").read_text() == rec


def test_refuses_an_image_tag_the_manifest_does_not_know(user_stack):
    u = user_stack
    text = u.s.stack.read_text()
    u.s.stack.write_text(text.replace("image: upgrade-infra/pa-assistant:{version}",
                                      "image: upgrade-infra/pa-assistant:v{version}"))
    r = u.cli("env", "adopt", "production")
    one_line_refusal(r, "upgrade-infra/pa-assistant:1.0.0", "no version")
    nothing_written(u)


def test_refuses_volume_names_that_do_not_exist(user_stack):
    u = user_stack
    text = u.s.stack.read_text()
    u.s.stack.write_text(text.replace("volumes: {assistant-data: /data}", "volumes: {assistant-files: /data}"))
    r = u.cli("env", "adopt", "production")
    one_line_refusal(r, f"{u.name}_assistant-files", "new, empty volume")
    nothing_written(u)


# -- the rename guard, down and destroy ------------------------------------------------------------
def test_rename_guard_refuses_a_changed_project_name(user_stack, compose_engine):  # noqa: F811
    u = user_stack
    assert u.cli("env", "adopt", "production").returncode == 0
    before = u.containers(compose_engine)
    u.s.stack.write_text(u.s.stack.read_text().replace(f"project: {u.name}", f"project: {u.name}-renamed"))
    for args in (("env", "status", "production"), ("env", "up", "production"), ("env", "down", "production")):
        one_line_refusal(u.cli(*args), u.name, "new, empty volumes")
    assert u.containers(compose_engine) == before


def test_down_then_destroy_leaves_no_container_and_keeps_the_users_volumes(user_stack, compose_engine):  # noqa: F811
    u = user_stack
    assert u.cli("env", "adopt", "production").returncode == 0
    assert u.cli("snapshot", "create", "production").returncode == 0
    r = u.cli("--json", "env", "down", "production")
    assert r.returncode == 0, r.stderr
    assert leftovers(compose_engine, u.name)["containers"] == []
    res = u.s.env("production").up()  # back up from the recorded names, on the same volumes
    assert not res["created"] and res["seed"] is None
    assert u.s.env("production").status().healthy
    r = u.cli("env", "destroy", "production", "--yes")
    assert r.returncode == 0, r.stderr
    left = leftovers(compose_engine, u.name)
    assert left["containers"] == [] and left["networks"] == []
    assert set(left["volumes"]) == {f"{u.name}_{v}" for v in ("pgdata", "assistant-data", "automations-data")}
    assert not [v for v in compose_engine.client().volumes.list() if v.name.startswith("uirp-")
                and any(x in v.name for x in _ids(u.s))]
    assert u.s.state.load_record("production") is None
    # the user brings the project back on their volumes; adopt it again, and destroy with the explicit flag
    u.p.up()
    assert u.cli("env", "adopt", "production").returncode == 0
    r = u.cli("env", "destroy", "production", "--yes", "--delete-volumes")
    assert r.returncode == 0, r.stderr
    assert leftovers(compose_engine, u.name) == {"containers": [], "volumes": [], "networks": []}
