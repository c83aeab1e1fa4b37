"""Fault injection for tests: die at a named step boundary.

``UPGRADE_INFRA_FAULT=<step>[:exit|:raise]``: when an operation reaches step ``<step>`` (after its
``step-begin`` is journaled, before the step acts) the tool either kills itself with SIGKILL
(``exit``, the default: no cleanup, no lock release, no journal end, exactly like ``kill -9`` or a
power loss) or raises :class:`~upgrade_infra.core.errors.InjectedFault` (``raise``: a step failure the
operation handles, e.g. an upgrade rolling itself back). ``<step>`` may be ``<kind>.<step>``
(``rollback.swap_databases``) to aim at one operation kind only.
"""

from __future__ import annotations

import os
import signal
import sys

from upgrade_infra.core.errors import BadInput, InjectedFault

ENV_VAR = "UPGRADE_INFRA_FAULT"
MODES = ("exit", "raise")


def parse(value: str | None) -> tuple[str, str] | None:
    """``"swap_databases:raise"`` -> ``("swap_databases", "raise")``; None when unset."""
    if not value:
        return None
    step, _, mode = value.partition(":")
    mode = mode or "exit"
    if not step or mode not in MODES:
        raise BadInput(f"bad {ENV_VAR}={value!r}", fix="write <step>[:exit|:raise], e.g. start_services:exit")
    return step, mode


def maybe_fail(kind: str, step: str) -> None:
    """Called by the step runner at each step boundary."""
    spec = parse(os.environ.get(ENV_VAR))
    if spec is None or spec[0] not in (step, f"{kind}.{step}"):
        return
    if spec[1] == "raise":
        raise InjectedFault(f"injected fault at {kind}.{step} ({ENV_VAR})", step=step)
    sys.stdout.flush()
    sys.stderr.write(f"upgrade-infra: injected fault: killing myself at {kind}.{step}\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)
