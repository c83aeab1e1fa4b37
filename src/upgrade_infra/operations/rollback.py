"""Rollback: back to a restore point, verified, with the failed state kept in the quarantine.

Steps (each journaled, each idempotent, so an interrupted rollback is finished by running
``upgrade-infra rollback ENV`` or ``resume ENV`` again)::

    preflight        restore point present and intact (metadata and file checksums)
    stop_services
    stage_databases  the restore point's databases ready under temporary names (clone: the spare)
    stage_data_dirs
    swap_databases   live databases -> <db>__q_<op> (quarantine), staged -> live: renames, O(1)
    swap_data_dirs
    restore_versions versions of the restore point back into the environment record
    advance_sequences every sequence moved past the ids its quarantined twin handed out, so rows
                     written from now on never reuse them (``quarantine merge`` can bring them back)
    start_services   readiness of every service
    verify           smoke checks (manifest checks with smoke: true + every health probe)
    report           rows in the quarantine that are not in the restore point, per table
    replenish        a new spare so the restore point stays reusable (outside the budget)

The total of the budgeted steps is compared with ``policies.rollback_budget_s``.

Entry points take the :class:`~upgrade_infra.backends.Environment` they act on first; ``rollback``
returns a :class:`~upgrade_infra.operations.results.RollbackResult` (or, when it finished an
interrupted operation instead, a :class:`~upgrade_infra.operations.results.RecoveryResult`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from upgrade_infra.core.errors import BadInput, CheckFailed, PortInUse, ServiceStartBlocked
from upgrade_infra.core.journal import OpSummary
from upgrade_infra.core.lock import env_lock, open_operation
from upgrade_infra.core.steps import (
    Ctx,
    Step,
    StepFailed,
    begin_op,
    end_op,
    register_recovery,
    resume_ctx,
    run_steps,
)
from upgrade_infra.operations import migrated, notify
from upgrade_infra.operations.recovery import recover
from upgrade_infra.operations.results import QuarantineSummary, RecoveryResult, RollbackResult
from upgrade_infra.restore import datadirs, quarantine
from upgrade_infra.restore import points as snapshots
from upgrade_infra.restore import volumes as engine_volumes
from upgrade_infra.restore.meta import rp_dir
from upgrade_infra.restore.ops import in_effect, protected_points

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment


# -- smoke checks --------------------------------------------------------------------------------
def smoke(env: Environment) -> dict[str, Any]:
    """The smoke suite: checks declared ``smoke: true`` plus every service's health probe."""
    try:
        from upgrade_infra.validation.engine import validate
    except ImportError:  # validation not installed: health probes only
        st = env.status()
        failed = [f"{s.name}: {s.detail}" for s in st.services if not s.healthy]
        return {"passed": not failed, "checks": len(st.services), "failed": failed, "source": "health"}
    rep = validate(env, smoke_only=True)
    failed = [f"{r.name}: {r.message}" for r in rep.results if not r.passed]
    return {"passed": rep.passed, "checks": len(rep.results), "failed": failed, "source": "validation"}


def require_smoke(env: Environment, when: str) -> dict[str, Any]:
    res = smoke(env)
    if not res["passed"]:
        raise CheckFailed(f"smoke checks failed {when}: {'; '.join(res['failed'][:5])}", failed=res["failed"])
    return res


# -- the steps -----------------------------------------------------------------------------------
def _rp(ctx: Ctx) -> snapshots.RestorePoint:
    return snapshots.get(ctx.env.state, ctx.data["rp"])


def _preflight(ctx: Ctx) -> dict[str, Any]:
    ctx.env.start_database()  # after a power loss the cluster may be down
    rp = (snapshots.get(ctx.env.state, ctx.data["rp"]) if ctx.data.get("prechecked")
          else snapshots.require_valid(ctx.env, ctx.data["rp"]))
    return {"versions": rp.versions, "spare": snapshots.has_spare(ctx.env, rp),
            "manifest_changed": rp.manifest_sha256 != ctx.env.manifest.sha256}


def _stop(ctx: Ctx) -> dict[str, Any]:
    return {"stopped": ctx.env.stop_services()}


def _stage_dbs(ctx: Ctx) -> dict[str, Any]:
    rp = _rp(ctx)
    return snapshots.get_strategy(rp.strategy).stage(ctx.env, rp, rp_dir(ctx.env.state, rp.id), ctx.op)


def _stage_dirs(ctx: Ctx) -> dict[str, Any]:
    rp = _rp(ctx)
    return {"data_dirs": datadirs.stage(ctx.env, rp, rp_dir(ctx.env.state, rp.id), ctx.op)}


def _swap_dbs(ctx: Ctx) -> dict[str, Any]:
    rp = _rp(ctx)
    qd = quarantine.qdir(ctx.env.state, ctx.op, ctx.env)
    quarantine.record(ctx.env, ctx.op, rp.id, from_versions=ctx.data.get("from_versions"), strategy=rp.strategy)
    res = snapshots.get_strategy(rp.strategy).swap(ctx.env, ctx.results["stage_databases"], ctx.op, qd)
    quarantine.record(ctx.env, ctx.op, rp.id, databases=res["quarantine"], pgdata=res.get("pgdata"))
    return res


def _swap_dirs(ctx: Ctx) -> dict[str, Any]:
    qd = quarantine.qdir(ctx.env.state, ctx.op, ctx.env)
    moved = datadirs.swap(ctx.env, ctx.results["stage_data_dirs"]["data_dirs"], qd)
    quarantine.record(ctx.env, ctx.op, ctx.data["rp"], data_dirs=moved)
    # service data in engine volumes: copied back into the live volumes (their names never change)
    vols = engine_volumes.restore(ctx.env, _rp(ctx), ctx.op, qd)
    if vols:
        quarantine.record(ctx.env, ctx.op, ctx.data["rp"], volumes=vols)
    return {"quarantine": moved, **({"volumes": vols} if vols else {})}


def _versions(ctx: Ctx) -> dict[str, Any]:
    rp = _rp(ctx)
    ctx.env.record.versions = dict(rp.versions)
    pin = getattr(ctx.env, "pin_images", None)  # container backends: start the very images recorded
    if pin is not None and rp.images:
        pin(rp.images)
    ctx.env.save()
    return {"versions": rp.versions, **({"images": rp.images} if rp.images else {})}


def _advance(ctx: Ctx) -> dict[str, Any]:
    env, rp = ctx.env, _rp(ctx)
    qmeta = quarantine.load(env.state, ctx.op) or {}
    st = snapshots.get_strategy(rp.strategy)
    with st.quarantined(env, {"databases": qmeta.get("databases") or {}, "pgdata": qmeta.get("pgdata")}) as qc:
        return {"advanced": quarantine.advance_sequences(qc, {db: env.conninfo(db) for db in qc})}


START_ATTEMPTS = 3


def start_after_swap(env: Environment, what: str) -> dict[str, float]:
    """Start the services once the environment was changed (databases swapped): a port still held
    is waited for and the start retried; if it stays held, the error names the holder and says that
    ``resume`` finishes the operation (exit 3: the environment was changed, this is no bad input)."""
    wait = env.manifest.policies.stop_timeout_s
    last: PortInUse | None = None
    for _ in range(START_ATTEMPTS):
        try:
            return env.start_services(port_wait_s=wait / START_ATTEMPTS)
        except PortInUse as e:
            last = e
    assert last is not None
    raise ServiceStartBlocked(
        f"{what} cannot start its services: {last.message} (waited {wait:g}s over "
        f"{START_ATTEMPTS} attempts); the databases are already switched, the services are down",
        fix=f"stop {last.details.get('holder')}, then run `upgrade-infra resume {env.name}`: it finishes "
            f"the {what} from this step", port=last.details.get("port"), holder=last.details.get("holder"))


def _start(ctx: Ctx) -> dict[str, Any]:
    return {"ready_s": start_after_swap(ctx.env, f"the rollback of {ctx.env.name}")}


def _verify(ctx: Ctx) -> dict[str, Any]:
    return require_smoke(ctx.env, f"after rolling {ctx.env.name} back")


def _report(ctx: Ctx) -> dict[str, Any]:
    env, rp = ctx.env, _rp(ctx)
    st = snapshots.get_strategy(rp.strategy)
    qmeta = quarantine.load(env.state, ctx.op) or {}
    with st.quarantined(env, {"databases": qmeta.get("databases") or {}, "pgdata": qmeta.get("pgdata")}) as qc:
        if st.reference_kept:
            with st.reference(env, rp) as rc:
                return quarantine.report(env, ctx.op, qc, rc)
        live = {db: env.conninfo(db) for db in qc}
        return quarantine.report(env, ctx.op, qc, live, in_cluster=not qmeta.get("pgdata"))


def _replenish(ctx: Ctx) -> dict[str, Any]:
    return {"spare_made": snapshots.make_spare(ctx.env, _rp(ctx))}


def rollback_steps(strategy: str) -> list[Step]:
    kept = snapshots.get_strategy(strategy).reference_kept
    report = Step("report", _report, budgeted=not kept)
    return [Step("preflight", _preflight), Step("stop_services", _stop), Step("stage_databases", _stage_dbs),
            Step("stage_data_dirs", _stage_dirs), Step("swap_databases", _swap_dbs),
            Step("swap_data_dirs", _swap_dirs), Step("restore_versions", _versions),
            Step("advance_sequences", _advance), *([] if kept else [report]), Step("start_services", _start), Step("verify", _verify),
            *([report] if kept else []), Step("replenish", _replenish, budgeted=False)]


# -- targets -------------------------------------------------------------------------------------
def default_target(env: Environment) -> str:
    stack = in_effect(env)
    if not stack:
        raise BadInput(f"nothing to roll back in {env.name}: no upgrade in effect was made by upgrade-infra",
                       fix="name a restore point: `upgrade-infra rollback ENV --to ID` (see `snapshot list`)")
    return stack[-1]


# -- the operation -------------------------------------------------------------------------------
def rollback(env: Environment, to: str | None = None, *, command: str = "rollback", auto: bool = False,
             parent: str | None = None, reason: str | None = None) -> RollbackResult | RecoveryResult:
    """Roll ``env`` back to restore point ``to`` (default: before the last upgrade in effect).

    An operation a crash interrupted is finished first (see :func:`upgrade_infra.operations.recovery.recover`).
    """
    with env_lock(env.state, env.name, command):
        inc = open_operation(env.state, env.name)  # an interrupted export (read only) does not count
        if inc is not None and inc.op != parent:
            return recover(env, command=command, prefer="rollback")
        rp_id = to or default_target(env)
        env.start_database()
        rp = snapshots.require_valid(env, rp_id)  # missing or damaged: fails before anything is touched
        env.check_runnable(rp.versions, rp.images)  # e.g. its images gone from the engine: the same
        return run(env, rp_id, command=command, auto=auto, parent=parent, reason=reason, prechecked=True)


def run(env: Environment, rp_id: str, *, command: str, auto: bool = False, parent: str | None = None,
        reason: str | None = None, resume: OpSummary | None = None, prechecked: bool = False,
        report: bool = True, announce: bool = True) -> RollbackResult:
    """The rollback steps as one journaled operation. ``report=False`` skips the per-table report of
    the quarantine and ``announce=False`` the notifications (``stage reset``: staging's discarded
    state is not worth either); both are journaled, so a ``resume`` honours them."""
    rp = snapshots.get(env.state, rp_id)
    if resume is not None:
        ctx = resume_ctx(env, resume)
        done = {s.name for s in resume.steps if s.status == "ok"}
    else:
        ctx = begin_op(env, "rollback", command=command, parent=parent, restore_point=rp_id,
                       from_versions=dict(env.record.versions), to_versions=dict(rp.versions),
                       data={"rp": rp_id, "auto": auto, "reason": reason, "strategy": rp.strategy,
                             "from_versions": dict(env.record.versions), "prechecked": prechecked,
                             **({} if report else {"report": False}), **({} if announce else {"announce": False})})
        done = set()
    steps = [s for s in rollback_steps(rp.strategy) if ctx.data.get("report", True) or s.name != "report"]
    budget = env.manifest.policies.rollback_budget_s
    try:
        run_steps(ctx, steps, skip=done)
    except StepFailed as e:
        if e.step == "preflight":  # nothing was touched
            end_op(ctx, "failed", error=e.message)
        else:  # left open: `resume` retries from the failed step once its cause is fixed
            if "upgrade-infra resume" not in (e.fix or ""):
                e.fix = (f"{e.fix}; then " if e.fix else "fix the cause, then ") + f"run `upgrade-infra resume {env.name}`"
        if ctx.data.get("announce", True):
            _notify(env, ctx, rp, "rollback.failed", "failed", e.message)
        raise
    result = summarize(ctx, rp, budget)
    end_op(ctx, "succeeded", total_s=result.total_s, over_budget=result.over_budget)
    migrated.record(env, dict(rp.versions), ctx.op)  # the databases are the restore point's again
    if ctx.data.get("announce", True):
        result.notifications = _notify(env, ctx, rp, "rollback.auto" if ctx.data.get("auto") else "rollback",
                                       "succeeded", None, total_s=result.total_s)
    return result


@register_recovery("rollback", steps=lambda data: rollback_steps(data.get("strategy", "clone")))
def _finish(env: Environment, inc: OpSummary, command: str, *, prefer: str) -> dict[str, Any]:
    """An interrupted rollback is finished from the step it stopped at."""
    return {"action": "finished", "result": run(env, inc.data["rp"], command=command, resume=inc)}


def summarize(ctx: Ctx, rp: snapshots.RestorePoint, budget: float) -> RollbackResult:
    total = ctx.budgeted_s()
    db_step = next((t["duration_s"] for t in ctx.timeline if t["step"] == "swap_databases"), None)
    rep = ctx.results.get("report") or {}
    return RollbackResult(
        op=ctx.op, environment=ctx.env.name, restore_point=rp.id, strategy=rp.strategy,
        versions=dict(ctx.env.record.versions), from_versions=ctx.data.get("from_versions"),
        auto=bool(ctx.data.get("auto")), steps=ctx.timeline, total_s=total,
        wall_s=round(time.monotonic() - ctx.started, 3), database_step_s=db_step, budget_s=budget,
        over_budget=total > budget, verified=bool((ctx.results.get("verify") or {}).get("passed")),
        staging_path=(ctx.results.get("stage_databases") or {}).get("path"),
        quarantine=QuarantineSummary(ctx.op, rep.get("rows_new_total"), rep.get("tables", []), rep.get("where")))


def _notify(env: Environment, ctx: Ctx, rp: snapshots.RestorePoint, name: str, outcome: str,
            error: str | None, **fields: Any) -> list[dict[str, Any]]:
    ev = notify.event(name, env.name, operation=ctx.op, outcome=outcome, restore_point=rp.id, error=error,
                      from_versions=ctx.data.get("from_versions"), to_versions=rp.versions, **fields)
    return notify.send(env.manifest, ev)


__all__ = ["default_target", "protected_points", "rollback", "rollback_steps", "run", "smoke"]
