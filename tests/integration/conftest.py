"""Fixtures of the integration tests: the small ``ledger`` stack (fast to kill and recover)."""

from __future__ import annotations

import pytest

from ..conftest import REPO, running_stack

LEDGER = REPO / "tests" / "data" / "ledger" / "stack.yaml"


@pytest.fixture(scope="module")
def ledger():
    """The ledger stack's production, up, shared by a test module."""
    with running_stack(LEDGER, "uinfra-ledger-") as s:
        yield s
