"""``env adopt`` and ``env destroy``: take over a running Compose project, and let an environment go.

``destroy`` removes what the tool made for the environment: its restore points (databases, copies,
volumes), its quarantines, its containers and network, its record and secrets. The data of an adopted
project is the user's: its named volumes stay unless ``delete_volumes`` is given explicitly (a generated
project's volumes are the tool's and go with it).
"""

from __future__ import annotations

import time
from typing import Any

from upgrade_infra.core.errors import BadInput
from upgrade_infra.core.lock import guard, open_operation
from upgrade_infra.core.steps import end_op, resume_ctx
from upgrade_infra.operations.results import EnvDestroyed
from upgrade_infra.operations.session import Session
from upgrade_infra.restore import points as snapshots
from upgrade_infra.restore import quarantine


def adopt(s: Session, name: str, project: str | None = None) -> dict[str, Any]:
    """Record the running Compose project as environment ``name`` (:mod:`upgrade_infra.backends.compose.adopt`)."""
    from upgrade_infra.backends.compose.adopt import adopt as adopt_project

    return adopt_project(s.manifest, s.state, name, project)


def destroy(s: Session, name: str, *, delete_volumes: bool = False) -> EnvDestroyed:
    rec = s.state.load_record(name)
    if rec is None:
        raise BadInput(f"no environment {name!r} in {s.state.root}", fix="see `upgrade-infra status`")
    if rec.kind == "staging":
        raise BadInput(f"{name!r} is a staging environment", fix=f"upgrade-infra stage destroy {name}")
    env = s.env(name)
    adopted = bool(rec.backend_state.get("adopted"))
    if delete_volumes and not adopted:
        raise BadInput("--delete-volumes is for adopted projects (a generated project's volumes always go)",
                       fix=f"upgrade-infra env destroy {name}")
    t0 = time.monotonic()
    with guard(s.state, name, f"env destroy {name}", allow_open=True):
        points = snapshots.list_points(s.state, name)
        qs = quarantine.list_all(s.state, name)
        if points or qs:
            env.start_database()  # restore points and quarantines may hold databases in its server
        for rp in points:
            snapshots.delete(env, rp.id)
        for q in qs:
            quarantine.delete(env, q["op"])
        if adopted:
            env.destroy(delete_volumes=delete_volumes)  # type: ignore[call-arg]
        else:
            env.destroy()
        if (inc := open_operation(s.state, name)) is not None:
            end_op(resume_ctx(env, inc), "abandoned", error=f"environment destroyed (env destroy {name})")
    return EnvDestroyed(name, [p.id for p in points], [q["op"] for q in qs], adopted and not delete_volumes,
                        round(time.monotonic() - t0, 3))
