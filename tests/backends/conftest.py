"""The conformance suite's one backend-specific place: how to make a stack for each backend.

Everything a backend needs to run ``test_conformance.py`` is its entry in :data:`SETUPS` (and the
manifest that entry writes, under ``stacks/<backend>/``). The tests themselves never name a backend.
See ``tests/backends/README.md``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from upgrade_infra.operations.session import Session, stop_everything

from ..conftest import REPO, free_base
from ..integration.test_cow import xfs  # noqa: F401 - the reflink filesystem the `cow` cases put their state dir on

HERE = Path(__file__).resolve().parent
LEDGER_APP = REPO / "tests" / "data" / "ledger" / "ledger.py"
BLOCK = 10  # ports of one environment


@dataclass(frozen=True)
class BackendSetup:
    """What the suite needs to know about one backend.

    ``write_stack(dest)`` writes the backend's stack manifest (and whatever it needs beside it) into
    ``dest`` with free port blocks from the suite's allocator (:func:`tests.conftest.free_base`) and
    returns the manifest's path. The stack must have production's services ``ledger`` (versions
    ``1.0`` and ``2.0`` of ``tests/data/ledger/ledger.py``, its ``migrate``/``downgrade`` jobs, the
    ``ledger`` database seeded) and ``web`` (depends on ledger), and staging masking of
    ``ledger.accounts.name``, as ``stacks/local/stack.yaml`` has them.

    ``strategies``: the restore-point strategies the backend supports, each with the name of a
    fixture giving a directory its state dir must be created in (None: anywhere), e.g. ``cow`` on a
    reflink filesystem. The suite runs create/list/delete and rollback for each of them, and expects
    the typed refusal for every other registered strategy.
    TODO(seam): derive them from the capabilities the backend declares once the seam lands.

    ``context()``: entered once per test session before the backend's first test (e.g. start a
    private container engine); ``unavailable()``: why the backend cannot run on this machine (the
    backend's tests are then skipped with that reason), or None.
    """

    write_stack: Callable[[Path], Path]
    strategies: dict[str, str | None]
    context: Callable[[], AbstractContextManager[object]] = nullcontext
    unavailable: Callable[[], str | None] = field(default=lambda: None)


def stack_copy(dest: Path, manifest: Path, *apps: Path) -> Path:
    """``manifest`` copied into ``dest`` with ``apps`` linked beside it and free port blocks from the
    suite's allocator: production's, then room for one staging environment (the suite makes at most
    one; a small block keeps the allocator's scan short)."""
    yaml = YAML()
    data = yaml.load(manifest.read_text())
    base = free_base(2 * BLOCK)
    data["environments"]["production"]["port_base"] = base
    data["staging"]["port_range"] = [base + BLOCK, base + 2 * BLOCK - 1]
    dest.mkdir(parents=True)
    for app in apps:
        (dest / app.name).symlink_to(app)
    out = dest / "stack.yaml"
    with open(out, "w") as f:
        yaml.dump(data, f)
    return out


# -- local ----------------------------------------------------------------------------------------
def _local_stack(dest: Path) -> Path:
    return stack_copy(dest, HERE / "stacks" / "local" / "stack.yaml", LEDGER_APP)


# -- compose --------------------------------------------------------------------------------------
COMPOSE_LEDGER_IMAGE = "upgrade-infra/conform-ledger:1"


def _compose_stack(dest: Path) -> Path:
    """Also a stack name of its own: Compose projects are ``<stack>-<env>`` on one shared engine."""
    out = stack_copy(dest, HERE / "stacks" / "compose" / "stack.yaml", LEDGER_APP)
    out.write_text(out.read_text().replace("\nname: conform\n", f"\nname: conform-{os.urandom(3).hex()}\n", 1))
    return out


def _compose_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "it starts a private dockerd, which needs root"
    if not (shutil.which("dockerd") or Path("/usr/sbin/dockerd").exists()):
        return "dockerd is not installed (apt-get install docker.io; nox -s tests installs it)"
    return None


@contextmanager
def _compose_engine() -> Iterator[object]:
    """A private dockerd (``UPGRADE_INFRA_TEST_ENGINE``/``_BIP``, as tests/compose; one already answering is
    reused and left running) with the images: the Debian base, PostgreSQL 15 and the ledger app on the
    reference apps' Python runtime (built once, then found up to date). DOCKER_HOST points at it."""
    from upgrade_infra.backends.compose import images
    from upgrade_infra.backends.compose.engine import start_private_engine

    e = start_private_engine(os.environ.get("UPGRADE_INFRA_TEST_ENGINE_ROOT", "/var/lib/upgrade-infra-docker"),
                             os.environ.get("UPGRADE_INFRA_TEST_ENGINE", "tests"),
                             os.environ.get("UPGRADE_INFRA_TEST_BIP", "172.31.251.1/24"))
    old = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = e.host
    try:
        built = images.build_all(e, REPO / "examples" / "pa-stack-compose", majors=(15,))
        runtime = next(b for b in built if b.tag.startswith("upgrade-infra/pa-runtime:"))
        dockerfile = f"FROM {runtime.tag}\nCOPY ledger.py /app/ledger.py\nRUN mkdir -p /data\nWORKDIR /app\n"
        inputs = images.digest("conform-ledger", runtime.image_id, dockerfile, LEDGER_APP.read_bytes())
        ctx = images._context({"Dockerfile": dockerfile, "ledger.py": LEDGER_APP})
        try:
            images.build_context(e.client(timeout=600), COMPOSE_LEDGER_IMAGE, ctx, labels={}, inputs=inputs)
        finally:
            shutil.rmtree(ctx, ignore_errors=True)
        yield e
    finally:
        if old is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = old
        if not e.reused:
            e.stop()


SETUPS: dict[str, BackendSetup] = {
    "local": BackendSetup(write_stack=_local_stack,
                          strategies={"clone": None, "dump": None, "fs": None, "cow": "xfs"}),
    "compose": BackendSetup(write_stack=_compose_stack, strategies={"clone": None, "dump": None},
                            context=_compose_engine, unavailable=_compose_unavailable),
}

#: the backends the suite runs, by name (``UPGRADE_INFRA_BACKENDS=local,compose`` picks some)
BACKENDS = [b for b in os.environ.get("UPGRADE_INFRA_BACKENDS", ",".join(SETUPS)).split(",") if b]


# -- fixtures (backend-neutral from here on) -------------------------------------------------------
_entered: dict[str, object] = {}


@pytest.fixture(scope="session")
def _backend_contexts():
    """Each backend's ``context()``, entered at its first use and left at the end of the session."""
    from contextlib import ExitStack

    with ExitStack() as stack:
        yield lambda name: _entered.setdefault(name, stack.enter_context(SETUPS[name].context()))
    _entered.clear()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test taking ``backend`` runs once per backend; one also taking ``strategy`` runs once
    per (backend, strategy it supports)."""
    if "backend" not in metafunc.fixturenames:
        return
    if "strategy" in metafunc.fixturenames:
        pairs = [(b, st) for b in BACKENDS for st in (SETUPS[b].strategies if b in SETUPS else ["?"])]
        metafunc.parametrize(["backend", "strategy"], pairs, indirect=["backend"], scope="module",
                             ids=[f"{b}-{st}" for b, st in pairs])
    else:
        metafunc.parametrize("backend", BACKENDS, indirect=True, scope="module")


@pytest.fixture(scope="module")
def backend(request, _backend_contexts) -> str:
    """The backend under test, by name."""
    name = request.param
    if name not in SETUPS:
        pytest.fail(f"no conformance setup for backend {name!r}: add it to SETUPS in {__file__}")
    why = SETUPS[name].unavailable()
    if why:
        pytest.skip(f"backend {name!r} cannot run here: {why}")
    _backend_contexts(name)
    return name


@contextmanager
def conformance_stack(backend: str, *, up: bool = True, base: Path | None = None) -> Iterator[Session]:
    """A Session on a private copy of ``backend``'s stack (its own state dir and ports; production up
    unless ``up=False``), created under ``base`` if given; every environment destroyed afterwards."""
    root = Path(tempfile.mkdtemp(prefix=f"uinfra-conform-{backend}-", dir=base))
    os.chmod(root, 0o711)
    s = Session(SETUPS[backend].write_stack(root / "stack"), root / "state")
    try:
        if up:
            s.env("production").up()
        yield s
    finally:
        stop_everything(s)
        for name in s.state.env_names():
            try:
                s.env(name).destroy()
            except Exception:  # noqa: BLE001 - keep cleaning up the others
                pass
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def fresh(backend):
    """``fresh()``: a new stack with production up, for a test that changes it (``fresh(base=dir)``,
    ``fresh(up=False)``); all of them removed after the test."""
    with _Stacks(backend) as stacks:
        yield stacks


class _Stacks:
    def __init__(self, backend: str) -> None:
        self.backend = backend
        self._open: list[AbstractContextManager[Session]] = []

    def __call__(self, *, up: bool = True, base: Path | None = None) -> Session:
        cm = conformance_stack(self.backend, up=up, base=base)
        s = cm.__enter__()
        self._open.append(cm)
        return s

    def __enter__(self) -> _Stacks:
        return self

    def __exit__(self, *exc: object) -> None:
        while self._open:
            self._open.pop().__exit__(None, None, None)


@pytest.fixture(scope="module")
def shared(backend):
    """One stack with production up, shared by the tests that only read it."""
    with conformance_stack(backend) as s:
        yield s


@pytest.fixture
def strategy_dir(request, backend):
    """``strategy_dir(name)``: where a restore point of strategy ``name`` needs its state dir (None: anywhere)."""
    def where(strategy: str) -> Path | None:
        fixture = SETUPS[backend].strategies[strategy]
        return request.getfixturevalue(fixture) if fixture else None

    return where
