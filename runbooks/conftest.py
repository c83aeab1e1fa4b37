"""nbval runs every runbook top to bottom (``pytest --nbval-lax runbooks``).

Here they run against a private copy of the reference stack on free ports with a fresh state dir,
passed to the notebook kernels through UPGRADE_INFRA_STACK / UPGRADE_INFRA_STATE_DIR, and every
environment they started is stopped at the end.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import stop_all, write_stack  # noqa: E402
from upgrade_infra.session import Session  # noqa: E402

_root: Path | None = None


def pytest_configure(config):
    global _root
    if not config.getoption("nbval_lax", default=False):
        return
    _root = Path(tempfile.mkdtemp(prefix="uinfra-nbval-"))
    os.chmod(_root, 0o711)
    os.environ["UPGRADE_INFRA_STACK"] = str(write_stack(_root / "stack"))
    os.environ["UPGRADE_INFRA_STATE_DIR"] = str(_root / "state")
    os.environ.setdefault("UPGRADE_INFRA_SEED_MB", "4")


def pytest_unconfigure(config):
    if _root is None:
        return
    stop_all(Session(Path(os.environ["UPGRADE_INFRA_STACK"]), _root / "state"))
    shutil.rmtree(_root, ignore_errors=True)
