"""Shared fixtures: real PostgreSQL clusters and copies of the reference stack on free ports.

State dirs live under /tmp with mode 0711 so the unprivileged PostgreSQL user can reach its data
dirs (pytest's own tmp dirs are 0700 root). Every fixture stops what it started.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from upgrade_infra.backends.local import postgres as pglib
from upgrade_infra.core import sql
from upgrade_infra.operations.sandbox import private_stack
from upgrade_infra.operations.session import Session, stop_everything
from upgrade_infra.stack.ports import free_block, port_window
from upgrade_infra.stack.private_copy import private_copy

collect_ignore = ["data"]  # notebooks and stacks used as test inputs, not tests
REPO = Path(__file__).resolve().parents[1]
PA_STACK = REPO / "examples" / "pa-stack"
STAGING_SPAN = 60


def test_port_window() -> tuple[int, int]:
    """Where tests put their port blocks: :func:`upgrade_infra.stack.ports.port_window` (below the
    kernel's ephemeral range, away from the reference stack's own ports; ``UPGRADE_INFRA_TEST_PORTS=lo-hi``
    narrows it, so parallel runs on one machine can be given disjoint windows)."""
    return port_window()


test_port_window.__test__ = False  # a helper, not a test


def free_base(span: int) -> int:
    return free_block(span)


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
    return private_copy(dest, source, edit, staging_span=STAGING_SPAN)


def stop_all(s: Session) -> None:
    stop_everything(s)


@pytest.fixture
def pa_stack(private_tmp):
    """A Session on a private copy of the reference stack (nothing started yet)."""
    s = Session(write_stack(private_tmp / "stack"), private_tmp / "state")
    yield s
    stop_all(s)


def running_stack(source: Path, prefix: str, seed_mb: float | None = None, *, edit=None, base: Path | None = None):
    """A private copy of a stack (``edit`` applied to its manifest; under ``base`` if given) with its
    production up; everything stopped and removed afterwards."""
    return private_stack(source, prefix, seed_mb, edit=edit, base=base)


@pytest.fixture(scope="module")
def pa_production():
    """The reference production, up and seeded (small), shared by a test module."""
    with running_stack(PA_STACK / "stack.yaml", "uinfra-prod-",
                       float(os.environ.get("UPGRADE_INFRA_TEST_SEED_MB", "4"))) as s:
        yield s
