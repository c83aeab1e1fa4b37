"""The ``compose`` backend on a real private Docker engine with the locally built images: the reference
Compose stack (its stack.yaml made by `import compose`) up, status, a clone restore point, an upgrade
1.0.0 -> 1.1.0 rolled back with fingerprints equal, down and destroy leaving nothing, the rename guard.

Engine: ``UPGRADE_INFRA_TEST_ENGINE`` (default ``tests``) / ``UPGRADE_INFRA_TEST_BIP``, as the other
Compose tests; an engine of that name already answering is reused. Ports come from the test port window.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from ruamel.yaml import YAML

from ..conftest import free_base

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "pa-stack-compose"
SEED_MB = float(os.environ.get("UPGRADE_INFRA_TEST_SEED_MB", "4"))
PROJECT = "com.docker.compose.project"


@pytest.fixture(scope="session")
def compose_images(images, compose_engine):
    return images


def write_compose_stack(dest: Path, edit=None) -> Path:
    """A copy of the example's stack.yaml with a unique stack name (so a unique Compose project) and a
    free port block of the test window; the Compose file beside it."""
    yaml = YAML()
    data = yaml.load((EXAMPLE / "stack.yaml").read_text())
    data["name"] = f"uixbe-{secrets.token_hex(3)}"
    base = free_base(70)
    data["environments"]["production"]["port_base"] = base
    data.setdefault("staging", {})["port_range"] = [base + 10, base + 69]
    if edit:
        edit(data)
    dest.mkdir(parents=True, exist_ok=True)
    for entry in EXAMPLE.iterdir():
        if entry.name not in ("stack.yaml", ".env") and not entry.name.startswith("."):
            (dest / entry.name).symlink_to(entry)
    out = dest / "stack.yaml"
    with open(out, "w") as f:
        yaml.dump(data, f)
    return out


def new_session(edit=None):
    from upgrade_infra.operations.session import Session

    root = Path(tempfile.mkdtemp(prefix="uixbe-"))
    os.chmod(root, 0o711)
    return Session(write_compose_stack(root / "stack", edit), root / "state"), root


def leftovers(engine, project: str) -> dict[str, list[str]]:
    c = engine.client()
    label = {"label": f"{PROJECT}={project}"}
    return {"containers": [x.name for x in c.containers.list(all=True, filters=label)],
            "volumes": [v.name for v in c.volumes.list(filters=label)],
            "networks": [n.name for n in c.networks.list(filters=label)]}


@pytest.fixture(scope="module")
def prod(compose_images, compose_engine):
    """The reference Compose stack's production, up and seeded; destroyed at the end."""
    s, root = new_session()
    env = s.env("production")
    t0 = time.monotonic()
    res = env.up(seed_mb=SEED_MB)
    print(f"\nenv up (compose, from nothing, seed {SEED_MB:g} MB): {res.to_dict()}, wall "
          f"{time.monotonic() - t0:.2f}s")
    try:
        yield s, res
    finally:
        try:
            s.env("production").destroy()
        finally:
            shutil.rmtree(root, ignore_errors=True)


def test_env_up_status(prod, compose_engine, compose_images):
    from upgrade_infra.backends.results import EnvUp

    s, res = prod
    env = s.env("production")
    assert isinstance(res, EnvUp)  # typed, as the local backend's: `env up`'s CLI reads res.total_s
    assert res.created and res.seed["bytes_added"] > 0
    assert env.project == f"{s.manifest.name}-production"
    st = env.status()
    assert st.healthy, st.to_dict()
    assert st.backend == "compose" and st.postgres["running"] and st.postgres["major"] == 15
    assert set(st.databases) == {"assistant", "automations"}
    for svc in ("assistant", "automations"):
        r = httpx.get(env.endpoint(svc).url + "/readyz", timeout=5)
        assert r.status_code == 200 and r.json()["status"] == "ready"
        assert env.endpoint(svc).host == "127.0.0.1"
    # the tool's connection goes through the loopback-published port
    from upgrade_infra.core import sql

    assert sql.fetch_value(env.conninfo("assistant"), "SELECT count(*) FROM agents") > 0
    assert env.database.endpoint().port == env.ports["postgres"]
    ids = env.image_ids()
    assert ids["assistant"] == compose_images["upgrade-infra/pa-assistant:1.0.0"].image_id
    left = leftovers(compose_engine, env.project)
    assert sorted(left["containers"]) == sorted(f"{env.project}-{n}-1" for n in ("postgres", "assistant",
                                                                                 "automations"))
    assert f"{env.project}_pgdata" in left["volumes"]


def test_clone_restore_point_records_images(prod):
    from upgrade_infra.restore import points as snapshots

    s, _ = prod
    env = s.env("production")
    res = snapshots.create(env, "clone", label="compose test")
    rp = snapshots.get(env.state, res["restore_point"]["id"])
    assert rp.strategy == "clone" and rp.pg_major == 15
    assert set(rp.images) == {"assistant", "automations"} and all(i.startswith("sha256:") for i in rp.images.values())
    assert set(rp.data_dirs) == {"assistant", "automations"}  # the services' data volumes, copied
    assert snapshots.verify(env, rp) == []
    snapshots.delete(env, rp.id)


def test_upgrade_then_rollback_fingerprints_equal(prod, compose_images):
    from upgrade_infra.operations import rollback, upgrade
    from upgrade_infra.restore.fingerprint import fingerprint

    s, _ = prod
    env = s.env("production")
    before = fingerprint(env)
    ids_before = env.image_ids()
    (env.capability(__import__("upgrade_infra.backends.interface", fromlist=["ServiceData"]).ServiceData)
     .path("assistant") / "marker.txt").write_text("before the upgrade")
    t0 = time.monotonic()
    up = upgrade.upgrade(env, {"assistant": "1.1.0", "automations": "1.1.0"}, strategy="clone", watch_s=0)
    print(f"\nupgrade 1.0.0 -> 1.1.0 (compose): {time.monotonic() - t0:.1f}s, outcome {up['outcome']}")
    assert up["outcome"] == "succeeded", up
    env = s.env("production")
    assert env.record.versions == {"assistant": "1.1.0", "automations": "1.1.0"}
    assert env.image_ids()["assistant"] == compose_images["upgrade-infra/pa-assistant:1.1.0"].image_id
    assert not fingerprint(env).equal(before)  # 1.1.0 migrated the schema
    rb = rollback.rollback(env)
    print(f"rollback (compose, clone, seed {SEED_MB:g} MB): budgeted {rb['total_s']}s, wall {rb['wall_s']}s, "
          f"database step {rb['database_step_s']}s; steps "
          + ", ".join(f"{t['step']} {t['duration_s']}" for t in rb["steps"]))
    assert rb["verified"] and not rb["over_budget"], rb
    env = s.env("production")
    assert env.record.versions == {"assistant": "1.0.0", "automations": "1.0.0"}
    assert fingerprint(env).equal(before)
    assert env.image_ids() == ids_before
    from upgrade_infra.backends.interface import ServiceData

    assert (env.capability(ServiceData).path("assistant") / "marker.txt").read_text() == "before the upgrade"
    assert env.status().healthy


def test_broken_release_rolls_itself_back_with_data_intact(prod, compose_engine):
    """The reference stack's broken release, 1.2.0 (examples/pa-stack/README.md: it migrates and its health
    probes pass, but posting a message returns 500), fails the smoke check ``assistant answers a message``
    after the upgrade: the upgrade rolls itself back, at the images it ran, with the databases and the data
    volumes as before, and leaves no one-off or helper container behind."""
    from upgrade_infra.backends.interface import ServiceData
    from upgrade_infra.core.journal import Journal
    from upgrade_infra.operations import upgrade
    from upgrade_infra.restore.fingerprint import fingerprint

    s, _ = prod
    env = s.env("production")
    versions, ids_before, before = dict(env.record.versions), env.image_ids(), fingerprint(env)
    marker = env.capability(ServiceData).path("automations") / "broken-upgrade.txt"
    marker.write_text("written before the broken upgrade")
    t0 = time.monotonic()
    res = upgrade.upgrade(env, {"assistant": "1.2.0", "automations": "1.2.0"}, strategy="clone", watch_s=0)
    print(f"\nupgrade to the broken 1.2.0 (compose): {time.monotonic() - t0:.1f}s, {res.outcome} at {res.failed_step}")
    assert res.outcome == "rolled-back" and res.failed_step == "smoke", res.to_dict()
    assert "assistant answers a message" in (res.error or ""), res.error
    assert res.rollback is not None and res.rollback.verified
    env = s.env("production")
    assert env.record.versions == versions
    assert env.image_ids() == ids_before
    after = fingerprint(env)
    assert after.equal(before), [str(d) for d in after.diff(before)]
    assert marker.read_text() == "written before the broken upgrade"
    assert env.status().healthy
    op = Journal(s.state, "production").get(res.op)
    assert op.outcome == "rolled-back" and op.step("smoke").status == "failed"
    c = compose_engine.client()
    assert [x.name for x in c.containers.list(all=True, filters={"label": "org.upgrade-infra.helper"})] == []
    assert sorted(x.name for x in c.containers.list(all=True, filters={"label": f"{PROJECT}={env.project}"})) == \
        sorted(f"{env.project}-{n}-1" for n in ("postgres", "assistant", "automations"))


def test_down_stops_everything_and_up_keeps_data(prod, compose_engine):
    from upgrade_infra.restore.fingerprint import fingerprint

    s, _ = prod
    env = s.env("production")
    before = fingerprint(env)
    res = env.down()
    print(f"\nenv down (compose): {res.total_s}s")
    from upgrade_infra.backends.results import EnvDown

    assert isinstance(res, EnvDown) and res.services == {"assistant": "stopped", "automations": "stopped"}
    c = compose_engine.client()
    assert c.containers.list(filters={"label": f"{PROJECT}={env.project}"}) == []  # nothing running
    assert leftovers(compose_engine, env.project)["networks"] == []
    assert f"{env.project}_pgdata" in leftovers(compose_engine, env.project)["volumes"]
    assert not env.status().postgres["running"]
    t0 = time.monotonic()
    again = env.up()
    print(f"env up (compose, existing volumes): {time.monotonic() - t0:.1f}s")
    assert not again["created"] and again["seed"] is None
    assert fingerprint(env).equal(before)


def test_upgrade_to_a_missing_image_is_refused_before_anything_stops(prod, compose_engine):
    """A release whose image is not on the engine: exit 2 naming the images, production untouched (no
    stop, no restore point, no operation in the journal); it used to stop production, take a restore
    point, fail at start_services and roll back (about a minute of downtime for nothing)."""
    from upgrade_infra.backends.compose.environment import ImageMissing
    from upgrade_infra.operations import upgrade
    from upgrade_infra.operations.session import Session
    from upgrade_infra.restore import points as snapshots

    s, _ = prod
    original = s.stack.read_text()
    s.stack.write_text(original.replace("      1.1.0-locking: {}\n", "      1.1.0-locking: {}\n      9.9.9: {}\n"))
    try:
        s2 = Session(s.stack, s.state_dir)
        env = s2.env("production")
        started = {c.name: c.attrs["State"]["StartedAt"] for c in env.driver.containers(env.project)}
        points = [p.id for p in snapshots.list_points(env.state, env.name)]
        journal = {f.name: f.read_bytes() for f in (env.state.root / "journal").glob("*")}
        with pytest.raises(ImageMissing) as e:
            upgrade.upgrade(env, {"assistant": "9.9.9", "automations": "9.9.9"})
        assert e.value.exit_code == 2
        assert "upgrade-infra/pa-assistant:9.9.9, upgrade-infra/pa-automations:9.9.9 not on the engine" in e.value.message
        assert "nothing was stopped or changed" in e.value.message
        env = s2.env("production")
        assert {c.name: c.attrs["State"]["StartedAt"] for c in env.driver.containers(env.project)} == started
        assert [p.id for p in snapshots.list_points(env.state, env.name)] == points
        assert {f.name: f.read_bytes() for f in (env.state.root / "journal").glob("*")} == journal  # no operation
        assert env.record.versions == {"assistant": "1.0.0", "automations": "1.0.0"} and env.status().healthy
    finally:
        s.stack.write_text(original)


def test_renamed_project_is_refused(prod, compose_engine):
    from upgrade_infra.backends.compose.environment import ProjectRenamed

    s, _ = prod
    env = s.env("production")
    env.backend_state["project"] = "someone-else"
    with pytest.raises(ProjectRenamed) as e:
        env.up()
    assert e.value.exit_code == 2 and "new, empty volumes" in e.value.message
    assert leftovers(compose_engine, "someone-else") == {"containers": [], "volumes": [], "networks": []}
    assert s.env("production").status().healthy  # the real one was not touched


def test_destroy_removes_only_this_project(compose_images, compose_engine):
    s, root = new_session(lambda d: d.update(seed=None))
    other = compose_engine.client().volumes.create(name=f"uixbe-other-{secrets.token_hex(3)}",
                                                   labels={PROJECT: "uixbe-other"})
    try:
        env = s.env("production")
        env.up()
        project = env.project
        assert leftovers(compose_engine, project)["containers"]
        env.destroy()
        assert leftovers(compose_engine, project) == {"containers": [], "volumes": [], "networks": []}
        assert compose_engine.client().volumes.get(other.name)  # another project's volume stays
        assert not env.dir.exists()
    finally:
        other.remove(force=True)
        shutil.rmtree(root, ignore_errors=True)


def test_missing_image_first_up_leaves_nothing(compose_images, compose_engine):
    from upgrade_infra.backends.compose.environment import ImageMissing

    def edit(d):
        d["compose"]["services"]["automations"]["image"] = "upgrade-infra/no-such-image:{version}"
        d["seed"] = None

    s, root = new_session(edit)
    try:
        env = s.env("production")
        with pytest.raises(ImageMissing) as e:
            env.up()
        assert e.value.exit_code == 2 and "upgrade-infra/no-such-image:1.0.0" in e.value.message
        assert leftovers(compose_engine, env.project) == {"containers": [], "volumes": [], "networks": []}
        assert s.state.load_record("production") is None
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_container_exiting_during_readiness_fails_fast_with_its_log(compose_images, compose_engine):
    """A service whose container exits while it is waited for: ServiceNotReady at once (not after the
    healthcheck's bound), naming the state and the container's last log lines; a first `up` leaves
    nothing behind."""
    from upgrade_infra.core.errors import ServiceNotReady

    def edit(d):
        d["services"]["automations"]["env"]["DATABASE_URL"] = "not-a-database-url"
        d["seed"] = None

    s, root = new_session(edit)
    try:
        env = s.env("production")
        t0 = time.monotonic()
        with pytest.raises(ServiceNotReady) as e:
            env.up()
        took = time.monotonic() - t0
        assert "automations" in e.value.message and "container exited" in e.value.message, e.value.message
        assert "Last log lines: " in e.value.message and e.value.message.split("Last log lines: ")[1].strip()
        assert took < 150, took  # the exit ends the wait; the healthcheck's bound is 180 s
        assert leftovers(compose_engine, env.project) == {"containers": [], "volumes": [], "networks": []}
    finally:
        shutil.rmtree(root, ignore_errors=True)
