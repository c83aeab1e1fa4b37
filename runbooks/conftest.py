"""nbval runs every runbook top to bottom (``pytest --nbval-lax runbooks``).

Here they run against a private copy of the reference stack on free ports with a fresh state dir,
passed to the notebook kernels through UPGRADE_INFRA_STACK / UPGRADE_INFRA_STATE_DIR, and every
environment they started is stopped at the end. Those variables are set only while a notebook's
kernel starts (its items' setup), never for the tests in tests/ that run in the same process.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pytest  # noqa: E402

from tests.conftest import stop_all, write_stack  # noqa: E402
from upgrade_infra.operations.session import Session  # noqa: E402

_root: Path | None = None
_kernel_env: dict[str, str] = {}


def pytest_configure(config):
    global _root
    if not config.getoption("nbval_lax", default=False):
        return
    _root = Path(tempfile.mkdtemp(prefix="uinfra-nbval-"))
    os.chmod(_root, 0o711)
    _kernel_env.update({"UPGRADE_INFRA_STACK": str(write_stack(_root / "stack")),
                        "UPGRADE_INFRA_STATE_DIR": str(_root / "state"),
                        "UPGRADE_INFRA_SEED_MB": os.environ.get("UPGRADE_INFRA_SEED_MB", "4")})


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item) -> Iterator[None]:
    """The kernel of a runbook starts in its first cell's setup: give it the private stack, then put
    the process environment back as it was."""
    if not _kernel_env or "runbooks" not in Path(str(item.fspath)).parts:
        yield
        return
    saved = {k: os.environ.get(k) for k in _kernel_env}
    os.environ.update(_kernel_env)
    try:
        yield
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def pytest_unconfigure(config):
    if _root is None:
        return
    stop_all(Session(Path(_kernel_env["UPGRADE_INFRA_STACK"]), _root / "state"))
    shutil.rmtree(_root, ignore_errors=True)
