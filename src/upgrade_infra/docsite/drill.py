"""The rollback drill's target and broken release, for any stack (the ``rollback`` runbook).

By default the drill runs on a *disposable copy* of production (a staging environment made with
``stage create``, destroyed afterwards), never on production itself; ``target="production"`` has to
be asked for explicitly. The broken release is the one named when every service declares it (the
reference stack's 1.2.0); otherwise the drill upgrades to another declared release and injects a
failure at the smoke step (``UPGRADE_INFRA_FAULT=upgrade.smoke:raise``), so a stack without a
deliberately broken version can still rehearse its automatic rollback.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from upgrade_infra.core import faults
from upgrade_infra.core.errors import BadInput

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment
    from upgrade_infra.operations.results import UpgradeResult
    from upgrade_infra.operations.session import Session

COPY, PRODUCTION = "copy", "production"
DRILL_ENV = "rollback-drill"
SIMULATED_AT = "upgrade.smoke"


def target(s: Session, where: str = COPY, *, source: str = "production", name: str = DRILL_ENV,
           seed_mb: float | None = None) -> Environment:
    """The environment the drill upgrades: a fresh copy of ``source`` (default) or, only when
    ``where == "production"``, ``source`` itself. ``source`` is brought up (and seeded) first."""
    if where not in (COPY, PRODUCTION):
        raise BadInput(f"drill target {where!r}", fix=f"use target={COPY!r} (default) or {PRODUCTION!r}")
    src = s.env(source)
    src.up(seed_mb=seed_mb)
    if where == PRODUCTION:
        return src
    from upgrade_infra.staging import lifecycle as staging

    staging.fresh(s, name, source=source)  # a copy left behind by an interrupted drill goes first
    return s.env(name)


def discard(s: Session, name: str = DRILL_ENV) -> bool:
    """Destroy the drill's copy; never anything but a staging environment. True when one was removed."""
    from upgrade_infra.staging import lifecycle as staging

    return staging.discard(s, name) is not None


def plan(env: Environment, broken_version: str | None) -> dict[str, Any]:
    """Target versions of the drill's upgrade and whether the failure is real or injected."""
    m = env.manifest
    if broken_version and all(broken_version in m.services[n].versions for n in m.services):
        return {"to": {n: broken_version for n in m.services}, "broken": f"release {broken_version}",
                "simulated": False}
    to = {}
    for n, svc in m.services.items():
        declared, now = list(svc.versions), env.record.versions.get(n)
        after = declared[declared.index(now) + 1:] if now in declared else []
        others = after or [v for v in declared if v != now][-1:]  # the next release, else another one
        if others:
            to[n] = others[0]
    if not to:
        raise BadInput("the rollback drill needs a second release of at least one service",
                       fix="declare another version under services.<name>.versions, or pass broken_version")
    return {"to": to, "broken": f"failure injected at {SIMULATED_AT}", "simulated": True}


@contextmanager
def failure(p: dict[str, Any]):
    """Inject the simulated failure for the duration of the drill's upgrade (nothing when real)."""
    if not p["simulated"]:
        yield
        return
    saved = os.environ.get(faults.ENV_VAR)
    os.environ[faults.ENV_VAR] = f"{SIMULATED_AT}:raise"
    try:
        yield
    finally:
        os.environ.pop(faults.ENV_VAR) if saved is None else os.environ.__setitem__(faults.ENV_VAR, saved)


def run(env: Environment, broken_version: str | None = None, *, command: str = "rollback drill") -> UpgradeResult:
    """Upgrade ``env`` to a broken (or failing) release; the guarded upgrade rolls itself back."""
    from upgrade_infra.operations import upgrade

    p = plan(env, broken_version)
    with failure(p):
        res = upgrade.upgrade(env, p["to"], command=f"{command} to {', '.join(f'{k}={v}' for k, v in p['to'].items())}")
    res.drill = {**p, "environment": env.name, "kind": env.kind}
    return res
