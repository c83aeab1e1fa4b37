"""nox sessions: ``tests`` (pytest + nbval over runbooks), ``lint`` (ruff, import-linter), ``site`` (the main job),
``compose`` (the Compose backend's tests on a private Docker engine).

Each session installs what it needs itself: Python packages into its virtualenv, and system
packages (Debian's chromium for browser checks) through apt when run as root; otherwise it
names the package to install.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True
EXTRAS = ".[examples,pg16,browser,docs,test,compose]"
# package -> a file it provides (fonts-liberation: chromium only recommends it, and pages need fonts)
# npm: the site ships Mermaid from the npm registry instead of loading it from a CDN
# prometheus: its promtool loads and evaluates the example alert rules (tests/test_alerts.py)
# xfsprogs: the copy-on-write (`cow`) tests format an XFS image with reflink=1 on a loop device
# jq: the learning-path exercises' checks use it (tests/integration/test_exercises.py runs them)
APT_PACKAGES = {"jq": "/usr/bin/jq", "chromium": "/usr/bin/chromium",
                "fonts-liberation": "/usr/share/fonts/truetype/liberation",
                "npm": "/usr/bin/npm", "prometheus": "/usr/bin/promtool", "xfsprogs": "/usr/sbin/mkfs.xfs"}
# docker.io, debootstrap: the Compose backend's tests (`nox -s compose`) start a private dockerd and build
# a Debian base image
COMPOSE_APT_PACKAGES = {"docker.io": "/usr/sbin/dockerd", "debootstrap": "/usr/sbin/debootstrap"}
ROOT = Path(__file__).parent


def ensure_system_packages(session: nox.Session, extra: dict[str, str] | None = None) -> None:
    missing = [pkg for pkg, path in {**APT_PACKAGES, **(extra or {})}.items() if not Path(path).exists()]
    if not missing:
        return
    if os.geteuid() != 0:
        session.error(f"missing system packages: {' '.join(missing)}; install them with "
                      f"`sudo apt-get install -y {' '.join(missing)}`")
    session.log(f"installing system packages: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], check=True, env=env)


def install(session: nox.Session, extra: dict[str, str] | None = None) -> None:
    ensure_system_packages(session, extra)
    session.install("--quiet", "-e", EXTRAS)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, then import-linter: the layer contracts of ``[tool.importlinter]`` in pyproject.toml."""
    session.install("--quiet", "ruff", "import-linter")
    session.run("ruff", "check", "src", "tests", "benchmarks", "tools", "noxfile.py", "runbooks")
    # import-linter reads the source (it imports nothing): the package only has to be findable
    session.run("lint-imports", "--no-cache", env={"PYTHONPATH": str(ROOT / "src")})


@nox.session
def tests(session: nox.Session) -> None:
    """Unit, integration and end-to-end tests on real PostgreSQL and real services, nbval over runbooks, and,
    when a private Docker engine can be started (as root), the Compose backend's tests and the conformance
    suite for both backends.

    As root this installs Debian's docker.io and debootstrap, starts a private dockerd (own data root, socket,
    bridge) and builds the local images (cached) in the background while the first run (everything but the
    Compose backend) goes, then runs tests/compose and the conformance suite for ``compose``, and stops the
    engine by its pid file. Not as root it says that the Compose tests were left out and how to run them."""
    local = ["pytest", "tests", "--ignore=tests/compose", "--nbval-lax", "runbooks", "-p", "no:cacheprovider",
             *session.posargs]
    if os.geteuid() != 0:
        install(session)
        session.warn("Compose backend tests NOT run: a private dockerd needs root. Run them with `sudo nox -s "
                     "compose` (or point DOCKER_HOST at an engine and run `pytest tests/compose`).")
        session.run(*local, env={"UPGRADE_INFRA_BACKENDS": "local"})
        return
    install(session, COMPOSE_APT_PACKAGES)
    with private_engine(session, build=False) as env:
        log = ROOT / "reports" / "compose-images-build.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        session.log(f"building the Compose images in the background (log: {log.relative_to(ROOT)})")
        with open(log, "wb") as out:
            build = subprocess.Popen([_bin(session, "python"), "-m", "upgrade_infra.backends.compose.images",
                                      "build"], stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env},
                                     cwd=ROOT)
        try:
            session.run(*local, env={"UPGRADE_INFRA_BACKENDS": "local"})
        finally:
            rc = build.wait()
        session.log("the Compose images:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-12:]))
        if rc != 0:
            session.error(f"the Compose images did not build (exit {rc}): see {log.relative_to(ROOT)}")
        session.run("pytest", "tests/compose", "tests/backends", "-p", "no:cacheprovider", *session.posargs,
                    env={**env, "UPGRADE_INFRA_BACKENDS": "compose"})


def _bin(session: nox.Session, name: str) -> str:
    return str(Path(session.bin) / name)


# the private engine of `nox -s tests`/`compose`: its own name, bridge and address pool (never docker0);
# UPGRADE_INFRA_NOX_ENGINE/_BIP give a second checkout running at the same time another engine
COMPOSE_ENGINE = {"name": os.environ.get("UPGRADE_INFRA_NOX_ENGINE", "nox"),
                  "bip": os.environ.get("UPGRADE_INFRA_NOX_BIP", "172.31.252.1/24"),
                  "root": "/var/lib/upgrade-infra-docker"}


@contextlib.contextmanager
def private_engine(session: nox.Session, *, build: bool = True) -> Iterator[dict[str, str]]:
    """Start the private dockerd, build the images (cached) unless told not to, yield the tests' environment;
    stop the engine after."""
    e = COMPOSE_ENGINE
    engine = ["python", "-m", "upgrade_infra.backends.compose.engine"]
    env = {"DOCKER_HOST": f"unix:///run/upgrade-infra-docker/{e['name']}.sock", "UPGRADE_INFRA_TEST_ENGINE": e["name"],
           "UPGRADE_INFRA_TEST_BIP": e["bip"], "UPGRADE_INFRA_TEST_ENGINE_ROOT": e["root"],
           "UPGRADE_INFRA_REQUIRE_ENGINE": "1"}
    session.run(*engine, "start", "--root", e["root"], "--name", e["name"], "--bip", e["bip"])
    try:
        if build:
            session.run("python", "-m", "upgrade_infra.backends.compose.images", "build", env=env)
        yield env
    finally:
        session.run(*engine, "stop", "--root", e["root"], "--name", e["name"])


@nox.session
def compose(session: nox.Session) -> None:
    """The Compose backend alone: start a private dockerd (own data root, socket, bridge), build the local
    images (cached: rootfs tarball, pip deps and compiled pgvector in ~/.cache/upgrade-infra/images, images in
    the engine's data root), run tests/compose and the conformance suite for ``compose``, stop the engine by
    its pid file. Needs root (dockerd).

    Then the staging, validation, migration, upgrade and rollback runbooks against the Compose example
    (``site run-section compose``) into ``reports/compose/``: ``nox -s site`` from the same commit shows them
    under "Runbooks > On Docker Compose" (``nox -s compose -- -k X`` runs them after the selected tests;
    the engine, DOCKER_HOST and the images are this session's)."""
    if os.geteuid() != 0:
        session.skip("the Compose tests start a private dockerd, which needs root")
    install(session, COMPOSE_APT_PACKAGES)
    with private_engine(session) as env:
        session.run("pytest", "tests/compose", "tests/backends", "-p", "no:cacheprovider", *session.posargs,
                    env={**env, "UPGRADE_INFRA_BACKENDS": "compose"})
        session.run("upgrade-infra", "--stack", "examples/pa-stack-compose/stack.yaml", "site", "run-section",
                    "compose", "--reports", "reports", env=env)


@nox.session
def site(session: nox.Session) -> None:
    """The main job: execute every runbook against the reference stack, gate, build the site.

    The site's "On Docker Compose" runbooks come from ``nox -s compose`` (reports/compose/): shown when that
    run was made from the same commit, else their pages say they were not executed in this build."""
    install(session)
    session.run("upgrade-infra", "--stack", "examples/pa-stack/stack.yaml", "site", "publish",
                "--reports", "reports", "--site", "site", *session.posargs)


@nox.session(name="site-clean")
def site_clean(session: nox.Session) -> None:
    """Remove the built site and executed reports (the state dir is left alone)."""
    for d in ("site", "reports/latest"):
        shutil.rmtree(ROOT / d, ignore_errors=True)


@nox.session(name="real-apps")
def real_apps(session: nox.Session) -> None:
    """Real open-source apps (Prefect server from PyPI, n8n from npm): stage, rehearse, upgrade, roll back.

    Installs of the apps are cached in ~/.cache/upgrade-infra/real-apps (first run: several minutes of
    downloads). Pass app names to run only some (`nox -s real-apps -- prefect`) and `--rollbacks 10`
    for ten manual rollbacks in a row. Results: reports/real-apps/summary.json.
    """
    if not shutil.which("npm"):  # n8n comes from npm (Debian's nodejs 18 is too old for n8n 1.x: see README)
        session.error("n8n needs Node.js >= 20.19 and npm on PATH")
    # [test]: the CLI imports junitparser, which the base install lacks (issue 10, item 2)
    session.install("--quiet", "-e", ".[test]")
    args = session.posargs or ["prefect", "n8n"]
    out = "reports/real-apps/rollbacks.json" if "--rollbacks" in args else "reports/real-apps/summary.json"
    session.run("python", "examples/real/drive.py", *args, "--json", out)
