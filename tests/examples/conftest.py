"""Fixtures for the pa-stack example apps (real PostgreSQL, real subprocesses)."""
import sys
import warnings
from pathlib import Path

import psycopg
import pytest

PA_STACK = Path(__file__).resolve().parents[2] / "examples" / "pa-stack"
if str(PA_STACK) not in sys.path:
    sys.path.insert(0, str(PA_STACK))

from pa_apps.testing import LocalCluster, Stack  # noqa: E402


def _usable(cluster) -> bool:
    """The services connect with the URL alone (no password): check that works."""
    try:
        psycopg.connect(cluster.create_database("pa_probe"), connect_timeout=5).close()
        return True
    except psycopg.OperationalError as exc:
        warnings.warn(f"pg_cluster URLs need a password ({exc}); using a private cluster", stacklevel=2)
        return False


@pytest.fixture(scope="session")
def pa_cluster(request):
    """The project's ``pg_cluster`` when it exists and works, else a private throwaway cluster."""
    try:
        shared = request.getfixturevalue("pg_cluster")
    except pytest.FixtureLookupError:
        shared = None
    if shared is not None and _usable(shared):
        yield shared
        return
    cluster = LocalCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture
def stack(pa_cluster, tmp_path):
    """Fresh databases and data dirs; every service started through it is stopped."""
    s = Stack(pa_cluster, tmp_path)
    yield s
    s.stop_all()
