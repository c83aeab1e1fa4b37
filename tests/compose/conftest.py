"""Fixtures of the Compose backend's tests: a private Docker engine and the locally built images.

The engine is Debian's dockerd started by this session (as root) with its own data root, exec root,
socket and bridge (``start_private_engine``); it installs nothing: ``nox -s tests`` installs docker.io
and debootstrap. When the engine cannot start (not root, no dockerd, dockerd failing) the tests skip with a
one-line reason, except when ``UPGRADE_INFRA_REQUIRE_ENGINE=1`` (set by ``nox -s tests``/``compose`` as
root, after installing docker.io): then that is an error, so CI never passes by skipping them.
Knobs: ``UPGRADE_INFRA_TEST_ENGINE`` (name, default ``tests``), ``UPGRADE_INFRA_TEST_BIP`` (default
``172.31.251.1/24``) and ``UPGRADE_INFRA_TEST_ENGINE_ROOT`` (default ``/var/lib/upgrade-infra-docker``):
give a parallel run another name and bridge. An engine of that name already answering is reused and left
running; one started here is stopped at the end (its data root, with the built images, is kept).
Ports: tests publish only in 30000-30499, or in ``UPGRADE_INFRA_TEST_PORTS=lo-hi`` when set.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COMPOSE_DIR = REPO / "examples" / "pa-stack-compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
PORT_RANGE = tuple(int(x) for x in os.environ.get("UPGRADE_INFRA_TEST_PORTS", "30000-30499").split("-"))


def free_ports(n: int) -> list[int]:
    """``n`` ports of PORT_RANGE nobody listens on (loopback)."""
    rng = random.Random(os.getpid() ^ int.from_bytes(os.urandom(4), "little"))
    candidates = list(range(PORT_RANGE[0], PORT_RANGE[1] + 1))
    rng.shuffle(candidates)
    out = []
    for port in candidates:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        out.append(port)
        if len(out) == n:
            return out
    raise RuntimeError(f"no free ports in {PORT_RANGE[0]}-{PORT_RANGE[1]}")


def stack_env(**extra: str) -> dict[str, str]:
    """Variables the example Compose file interpolates: fresh secrets and free ports."""
    pg, assistant, automations = free_ports(3)
    return {"POSTGRES_PASSWORD": secrets.token_urlsafe(16), "PA_SECRET_KEY": secrets.token_urlsafe(24),
            "POSTGRES_PORT": str(pg), "ASSISTANT_PORT": str(assistant), "AUTOMATIONS_PORT": str(automations),
            **extra}


def project_name(prefix: str) -> str:
    return f"uixt-{prefix}-{secrets.token_hex(3)}"


def no_engine(reason: str) -> None:
    """Skip (one line, shown by -ra) or, when the engine is required (nox as root), fail."""
    if os.environ.get("UPGRADE_INFRA_REQUIRE_ENGINE") == "1":
        pytest.fail(f"Compose tests required (UPGRADE_INFRA_REQUIRE_ENGINE=1) but {reason}", pytrace=False)
    pytest.skip(f"no container engine for the Compose tests: {reason}")


@pytest.fixture(scope="session")
def engine():
    try:
        import docker  # noqa: F401  (the compose extra)

        from upgrade_infra.backends.compose.engine import start_private_engine
        from upgrade_infra.core.errors import BadInput, OperationFailed
    except ImportError as e:
        no_engine(f"{e.name} is not installed (pip install -e '.[compose]')")
    dockerd = shutil.which("dockerd") or (Path("/usr/sbin/dockerd").exists() and "/usr/sbin/dockerd")
    if os.geteuid() != 0:
        no_engine("a private dockerd needs root" + ("" if dockerd else " (and dockerd is not installed)"))
    if not dockerd:
        no_engine("dockerd is not installed (`nox -s tests` as root installs docker.io; or apt-get install -y "
                  "docker.io)")
    try:
        e = start_private_engine(os.environ.get("UPGRADE_INFRA_TEST_ENGINE_ROOT", "/var/lib/upgrade-infra-docker"),
                                 os.environ.get("UPGRADE_INFRA_TEST_ENGINE", "tests"),
                                 os.environ.get("UPGRADE_INFRA_TEST_BIP", "172.31.251.1/24"))
    except (BadInput, OperationFailed) as err:
        no_engine(f"the private dockerd did not start: {err.one_line()}")
    print(f"\nprivate engine {e.name}: {e.host}, start {e.start_seconds}s{' (reused)' if e.reused else ''}")
    yield e
    if not e.reused:
        e.stop()


@pytest.fixture(scope="session")
def images(engine):
    """The base, PostgreSQL and reference app images (built once, then found up to date)."""
    from upgrade_infra.backends.compose.images import ImageBuildFailed, build_all

    try:
        built = build_all(engine, COMPOSE_DIR)
    except ImageBuildFailed as e:  # a mirror hiccup on a cold build: once more (what was built is kept)
        print(f"image build failed, retrying once: {e.one_line()}")
        built = build_all(engine, COMPOSE_DIR)
    for b in built:
        print(f"{b.tag}: {'up to date' if b.skipped else 'built'} {b.seconds}s {b.note}")
    return {b.tag: b for b in built}


@pytest.fixture(scope="session")
def cli(engine):
    from upgrade_infra.backends.compose.driver import ComposeCLI

    return ComposeCLI(engine)


@pytest.fixture(scope="session")
def driver(engine):
    from upgrade_infra.backends.compose.driver import EngineDriver

    return EngineDriver(engine)


class Project:
    """One Compose project of the example file, brought up by a fixture and always taken down (-v)."""

    def __init__(self, cli, name: str, env: dict[str, str]) -> None:
        self.cli, self.name, self.env, self.files = cli, name, env, [COMPOSE_FILE]
        self.up_seconds: float | None = None

    def up(self, *services: str) -> None:
        self.up_seconds = self.cli.up(self.name, self.files, services, env=self.env, wait_timeout=240).seconds

    def down(self) -> None:
        self.cli.down(self.name, self.files, volumes=True, env=self.env, timeout=5)

    def url(self, service: str, path: str) -> str:
        port = {"assistant": "ASSISTANT_PORT", "automations": "AUTOMATIONS_PORT"}[service]
        return f"http://127.0.0.1:{self.env[port]}{path}"


@pytest.fixture
def new_project(cli, images):
    """Factory of example-stack projects; every one made is taken down with its volumes at the end."""
    made: list[Project] = []

    def make(prefix: str, **extra: str) -> Project:
        p = Project(cli, project_name(prefix), stack_env(**extra))
        made.append(p)
        return p

    yield make
    for p in made:
        p.down()


@pytest.fixture(scope="session")
def compose_engine(engine):
    """The private engine, found through ``DOCKER_HOST`` as a user's client would find it: by the backend in
    this process and by the CLI in child processes (tests/faultcli.py)."""
    old = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = engine.host
    yield engine
    if old is None:
        os.environ.pop("DOCKER_HOST", None)
    else:
        os.environ["DOCKER_HOST"] = old


@pytest.fixture(scope="session")
def docker_host(compose_engine, images):
    """:func:`compose_engine` with the images built."""
    return compose_engine
