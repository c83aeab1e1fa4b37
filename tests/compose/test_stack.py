"""The example Compose file on the private engine, and the engine driver against it (real containers)."""

from __future__ import annotations

import time

import httpx
import pytest

from upgrade_infra.backends.compose.driver import PROJECT_LABEL, ExecTimeout

SERVICES = ["assistant", "automations", "postgres"]


def test_example_up_wait_answers_then_down_leaves_nothing(new_project, driver, images, engine):
    p = new_project("life")
    p.up()
    print(f"compose up -d --wait (3 services, from nothing): {p.up_seconds:.1f}s")
    for service in ("assistant", "automations"):
        r = httpx.get(p.url(service, "/healthz"), timeout=5)
        assert r.status_code == 200 and r.json()["status"] == "ok"
    assert httpx.get(p.url("automations", "/readyz"), timeout=5).json()["status"] == "ready"
    assert driver.project_health(p.name) == {s: "healthy" for s in SERVICES}
    ref = driver.service_image(p.name, "assistant")
    assert ref.reference == "upgrade-infra/pa-assistant:1.0.0"
    assert ref.image_id == images["upgrade-infra/pa-assistant:1.0.0"].image_id
    assert ref.pinned == ref.image_id and ref.repo_digests == []  # built locally: no registry digest
    assert ref.labels["org.upgrade-infra.release"] == "1.0.0"
    volumes = {v.name for v in engine.client().volumes.list(filters={"label": f"{PROJECT_LABEL}={p.name}"})}
    assert volumes == {f"{p.name}_{v}" for v in ("pgdata", "assistant-data", "automations-data")}
    ps = p.cli.ps(p.name, p.files, env=p.env)
    assert sorted(x["Service"] for x in ps) == SERVICES
    t0 = time.monotonic()
    p.down()
    print(f"compose down -v: {time.monotonic() - t0:.1f}s")
    client = engine.client()
    assert driver.containers(p.name) == []
    assert client.volumes.list(filters={"label": f"{PROJECT_LABEL}={p.name}"}) == []
    assert client.networks.list(filters={"label": f"{PROJECT_LABEL}={p.name}"}) == []


def test_config_resolves_without_secrets_on_argv(cli):
    from .conftest import COMPOSE_FILE, stack_env

    env = stack_env()
    model = cli.config("uixt-config", [COMPOSE_FILE], env=env)
    assert model["name"] == "uixt-config"
    assert model["volumes"]["pgdata"]["name"] == "uixt-config_pgdata"
    assert model["services"]["assistant"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert env["POSTGRES_PASSWORD"] in model["services"]["assistant"]["environment"]["DATABASE_URL"]
    assert env["POSTGRES_PASSWORD"] not in " ".join(cli.argv("uixt-config", [COMPOSE_FILE], "config"))


def test_invalid_compose_file_is_reported_with_compose_message(cli, tmp_path):
    from upgrade_infra.backends.compose.driver import ComposeFileInvalid

    bad = tmp_path / "docker-compose.yml"
    bad.write_text("services:\n  a:\n    image: x\n    ports: [\n")
    with pytest.raises(ComposeFileInvalid) as e:
        cli.config("uixt-bad", [bad])
    assert "line" in e.value.message and e.value.exit_code == 2


@pytest.fixture(scope="module")
def running(cli, images):
    """One project's postgres and assistant, for the exec tests (taken down with its volumes)."""
    from .conftest import Project, project_name, stack_env

    p = Project(cli, project_name("exec"), stack_env())
    try:
        p.up("postgres", "assistant")
        yield p
    finally:
        p.down()


def test_exec_exit_code_output_env_user(driver, running):
    pg = driver.container(running.name, "postgres")
    r = driver.exec(pg, ["psql", "-U", "pa", "-d", "assistant", "-Atc", "SELECT count(*) FROM alembic_version"],
                    user="postgres")
    assert (r.exit_code, r.stdout.strip()) == (0, "1"), r.stderr
    r = driver.exec(pg, ["sh", "-c", 'echo "$UIXT_VALUE"; id -un; exit 7'], env={"UIXT_VALUE": "from-env"},
                    user="postgres")
    assert r.exit_code == 7 and r.stdout.split() == ["from-env", "postgres"]
    r = driver.exec(pg, ["sh", "-c", "echo oops >&2; exit 3"])
    assert (r.exit_code, r.stderr.strip()) == (3, "oops")
    r = driver.exec(pg, ["psql", "-U", "pa", "-d", "assistant", "-At"], user="postgres",
                    stdin=b"SELECT 40 + 2;\n")
    assert r.stdout.strip() == "42"


def test_exec_timeout_kills_the_command(driver, running):
    app = driver.container(running.name, "assistant")
    t0 = time.monotonic()
    with pytest.raises(ExecTimeout):
        driver.exec(app, ["sleep", "60"], timeout=1)
    assert time.monotonic() - t0 < 10
    left = driver.exec(app, ["sh", "-c", "for p in /proc/[0-9]*; do cat $p/cmdline 2>/dev/null | tr '\\0' ' ';"
                                         " echo; done | grep -c '^sleep 60' || true"])
    assert left.stdout.strip() == "0"


def test_health_of_a_stopped_container(driver, running, cli):
    cli.run(running.name, running.files, "stop", "assistant", env=running.env)
    try:
        c = driver.containers(running.name, "assistant")[0]
        assert driver.health(c) == "exited"
    finally:
        running.up("assistant")
    assert driver.health(driver.container(running.name, "assistant")) == "healthy"
