"""Shared fixtures: real PostgreSQL clusters and copies of the reference stack on free ports.

State dirs live under /tmp with mode 0711 so the unprivileged PostgreSQL user can reach its data
dirs (pytest's own tmp dirs are 0700 root). Every fixture stops what it started.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from upgrade_infra.backends.local import postgres as pglib
from upgrade_infra.core import sql
from upgrade_infra.operations.session import Session, stop_everything
from upgrade_infra.stack.ports import holder_of

collect_ignore = ["data"]  # notebooks and stacks used as test inputs, not tests
REPO = Path(__file__).resolve().parents[1]
PA_STACK = REPO / "examples" / "pa-stack"
STAGING_SPAN = 60


def test_port_window() -> tuple[int, int]:
    """Where tests put their port blocks: below the kernel's ephemeral range (outgoing connections
    of anything on the machine take ports there between a check and a bind), away from the
    reference stack's own ports (25400-25420, staging 26000-26999). ``UPGRADE_INFRA_TEST_PORTS=lo-hi`` narrows it, so
    parallel runs on one machine can be given disjoint windows."""
    if os.environ.get("UPGRADE_INFRA_TEST_PORTS"):
        lo, hi = (int(x) for x in os.environ["UPGRADE_INFRA_TEST_PORTS"].split("-"))
        return lo, hi
    eph_lo = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    return 28000, min(eph_lo, 32768) - 1


test_port_window.__test__ = False  # a helper, not a test


def free_base(span: int) -> int:
    rng = random.Random(os.getpid() ^ int.from_bytes(os.urandom(4), "little"))
    lo, hi = test_port_window()
    for _ in range(200):
        base = rng.randrange(lo, hi - span, 10)
        if all(holder_of(p) is None for p in range(base, base + span)):
            return base
    raise RuntimeError("no free port range")


@pytest.fixture(scope="session", autouse=True)
def _no_orphan_pg_bases():
    """State dirs in 0700 temp dirs get their clusters' homes in /var/lib/upgrade-infra/<hash>; fixtures
    remove the temp dirs, this removes those homes once their state dir is gone."""
    yield
    from upgrade_infra.core.state import prune_orphan_bases

    prune_orphan_bases()


@pytest.fixture
def private_tmp():
    d = Path(tempfile.mkdtemp(prefix="uinfra-test-"))
    os.chmod(d, 0o711)
    yield d
    shutil.rmtree(d, ignore_errors=True)


class ScratchCluster:
    def __init__(self, root: Path) -> None:
        self.port = free_base(1)
        self.cluster = pglib.Cluster(pglib.choose_install(), root / "data", root / "run", self.port,
                                     root / "pg.log", pglib.server_user())
        self.cluster.init()
        self.cluster.start()
        sql.execute(self.admin(), sql.alter_role_password("postgres", "scratch"))  # host auth is scram

    def admin(self, db: str = "postgres") -> str:
        return self.cluster.admin_conninfo(db)

    def create_database(self, name: str) -> str:
        sql.execute(self.admin(), sql.drop_database(name), sql.create_database(name))
        return f"postgresql://postgres:scratch@127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="session")
def pg_cluster():
    root = Path(tempfile.mkdtemp(prefix="uinfra-pg-"))
    os.chmod(root, 0o711)
    c = ScratchCluster(root)
    yield c
    c.cluster.stop(mode="immediate")
    shutil.rmtree(root, ignore_errors=True)


def write_stack(dest: Path, source: Path = PA_STACK / "stack.yaml", edit=None) -> Path:
    """A copy of a stack manifest in ``dest`` with its own free port blocks (pa_apps linked in)."""
    yaml = YAML()
    data = yaml.load(source.read_text())
    n = len(data["environments"])
    base = free_base(10 * n + STAGING_SPAN)
    for i, env in enumerate(data["environments"].values()):
        env["port_base"] = base + 10 * i
    data["staging"]["port_range"] = [base + 10 * n, base + 10 * n + STAGING_SPAN - 1]
    if edit:
        edit(data)
    dest.mkdir(parents=True, exist_ok=True)
    for entry in source.parent.iterdir():
        if entry.name != source.name and not entry.name.startswith("."):
            (dest / entry.name).symlink_to(entry)
    out = dest / "stack.yaml"
    with open(out, "w") as f:
        yaml.dump(data, f)
    return out


def stop_all(s: Session) -> None:
    stop_everything(s)


@pytest.fixture
def pa_stack(private_tmp):
    """A Session on a private copy of the reference stack (nothing started yet)."""
    s = Session(write_stack(private_tmp / "stack"), private_tmp / "state")
    yield s
    stop_all(s)


@contextmanager
def running_stack(source: Path, prefix: str, seed_mb: float | None = None, *, edit=None, base: Path | None = None):
    """A private copy of a stack (``edit`` applied to its manifest; under ``base`` if given) with its
    production up; everything stopped and removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    os.chmod(root, 0o711)
    s = Session(write_stack(root / "stack", source, edit), root / "state")
    try:
        s.env("production").up(seed_mb=seed_mb)
        yield s
    finally:
        stop_all(s)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def pa_production():
    """The reference production, up and seeded (small), shared by a test module."""
    with running_stack(PA_STACK / "stack.yaml", "uinfra-prod-",
                       float(os.environ.get("UPGRADE_INFRA_TEST_SEED_MB", "4"))) as s:
        yield s
