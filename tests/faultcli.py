"""Running the CLI in a child process, optionally with a fault injected at a step boundary
(``UPGRADE_INFRA_FAULT``, see :mod:`upgrade_infra.core.faults`): shared by the fault-injection tests of
every backend (tests/integration/test_faults.py, test_dr_journaled.py, tests/compose/test_faults.py).

``cli(s, "upgrade", "production", "--to", "ledger=2.0", fault="upgrade.smoke")`` runs
``python -m upgrade_infra --stack S --state-dir D --json upgrade …`` with the fault set (and any fault of
the calling process's environment removed); ``killed(r)`` says whether it died by SIGKILL at a boundary.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping

from upgrade_infra.core.faults import ENV_VAR
from upgrade_infra.operations.session import Session


def cli(s: Session, *args: str, fault: str | None = None, env: Mapping[str, str] | None = None,
        timeout: float = 300, json_output: bool = True) -> subprocess.CompletedProcess:
    """The CLI on ``s``'s stack and state dir (``--json`` unless ``json_output=False``); ``fault`` is
    ``[<kind>.]<step>[:exit|:raise]``; ``env`` adds or overrides variables of the child's environment."""
    child = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    child.update(env or {})
    if fault:
        child[ENV_VAR] = fault
    return subprocess.run([sys.executable, "-m", "upgrade_infra", "--stack", str(s.stack), "--state-dir",
                           str(s.state.root), *(["--json"] if json_output else []), *args],
                          capture_output=True, text=True, timeout=timeout, env=child)


def killed(r: subprocess.CompletedProcess, at: str | None = None) -> bool:
    """Whether the child was killed (SIGKILL) by an injected fault (at ``<kind>.<step>`` when given)."""
    return r.returncode == -signal.SIGKILL and (at is None or f"killing myself at {at}\n" in r.stderr)
