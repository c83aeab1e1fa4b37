"""How ``upgrade-infra resume STAGING`` finishes a ``migrate test`` that was killed half-way.

The rehearsal only ever changes staging, and it takes its restore point before the migration runs.
So: if a restore point was taken, staging goes back to it (unless a restore already finished), then the
restore point and the quarantined databases are dropped; if none was taken, the migration never ran:
the versions are put back and the services started. Registered in the operation-recovery registry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from upgrade_infra.core.errors import RestorePointError, UnknownName
from upgrade_infra.core.journal import Journal, OpSummary
from upgrade_infra.core.steps import end_op, register_recovery, resume_ctx
from upgrade_infra.restore import points as snapshots
from upgrade_infra.restore import quarantine

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment

KIND = "migrate-test"


def _exists(env: Environment, rp_id: str | None) -> bool:
    if not rp_id:
        return False
    try:
        snapshots.get(env.state, rp_id)
        return True
    except (RestorePointError, UnknownName):
        return False


@register_recovery(KIND)
def recover_rehearsal(env: Environment, inc: OpSummary, command: str, *, prefer: str = "resume") -> dict[str, Any]:
    from upgrade_infra.operations.rollback import run as rollback_run

    ctx = resume_ctx(env, inc)
    rp_id = inc.restore_point or inc.data.get("rp")
    children = [o for o in Journal(env.state, env.name).operations() if o.parent == inc.op and o.kind == "rollback"]
    if _exists(env, rp_id):
        restored = any(c.outcome == "succeeded" for c in children)
        if not restored:
            res = rollback_run(env, rp_id, command=command, auto=True, parent=inc.op, reason="interrupted migrate test")
            children.append(Journal(env.state, env.name).get(res["op"]))
        for c in children:
            if c is not None:
                quarantine.delete(env, c.op)
        snapshots.delete(env, rp_id)
        action = f"staging restored to {rp_id} (taken before the migration) and the restore point dropped"
    else:
        env.stop_services()
        env.record.versions.update(inc.from_versions)
        env.save()
        env.start_services()
        action = "no restore point was taken (the migration had not run): versions put back, services started"
    end_op(ctx, "recovered", error="interrupted; staging reset")
    return {"action": action}
