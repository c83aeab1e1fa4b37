"""Restore-point operations: ``create`` (locked, journaled steps) and ``prune`` (retention), the
restore points prune must keep (:func:`protected_points`), and how ``resume`` finishes an
interrupted ``create``.

Entry points take the :class:`~upgrade_infra.backends.Environment` they act on first; ``create``
returns a :class:`~upgrade_infra.restore.results.RestorePointCreated`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from upgrade_infra.core.errors import BadInput
from upgrade_infra.core.journal import Journal, OpSummary, history
from upgrade_infra.core.lock import env_lock, guard
from upgrade_infra.core.steps import (
    Ctx,
    Step,
    StepFailed,
    begin_op,
    end_op,
    register_recovery,
    resume_ctx,
    run_steps,
    undo_steps,
)
from upgrade_infra.restore.clone import reopen
from upgrade_infra.restore.meta import RestorePoint, incomplete_ids, new_id
from upgrade_infra.restore.points import (
    capture,
    delete,
    get,
    get_strategy,
    list_points,
    make_spare,
    strategy_choice,
)
from upgrade_infra.restore.results import RestorePointCreated
from upgrade_infra.stack.manifest import Retention

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment


def _stop(ctx: Ctx) -> dict[str, Any]:
    return {"stopped": ctx.env.stop_services()}


def _start(ctx: Ctx) -> dict[str, Any]:
    return {"started_s": ctx.env.start_services()}


def _capture(ctx: Ctx) -> dict[str, Any]:
    rp = capture(ctx.env, ctx.data["strategy"], label=ctx.data.get("label"), op=ctx.op, rp_id=ctx.data["rp"],
                 why=ctx.data.get("strategy_why"))
    return {"restore_point": rp.id, "bytes": rp.bytes}


def _spare(ctx: Ctx) -> dict[str, Any]:
    return {"made": make_spare(ctx.env, get(ctx.env.state, ctx.data["rp"]))}


def drop_partial(capture_step: str) -> Callable[[Ctx], dict[str, Any]]:
    """The inverse of the step ``capture_step`` that captures restore point ``ctx.data["rp"]`` (``snapshot
    create``'s ``capture``, an upgrade's ``restore_point``): a restore point whose capture did not
    finish is removed, the databases reopened first (a crash inside the capture window leaves them
    closed); a finished one is kept."""
    def undo(ctx: Ctx) -> dict[str, Any]:
        if capture_step not in ctx.results:
            reopen(ctx.env)
            delete(ctx.env, ctx.data["rp"])
            return {"deleted": ctx.data["rp"]}
        return {"kept": ctx.data["rp"]}

    return undo


def create_steps(strategy: str) -> list[Step]:
    st = get_strategy(strategy)
    steps = [Step("capture", _capture, drop_partial("capture"))]
    if st.needs_stopped_services:
        steps = [Step("stop_services", _stop, _start), *steps, Step("start_services", _start)]
    return [*steps, Step("spare", _spare, budgeted=False)]


def create(env: Environment, strategy: str | None = None, *, label: str | None = None,
           command: str = "snapshot create") -> RestorePointCreated:
    """Take a restore point as a journaled operation (services stopped only when the strategy needs it)."""
    name, why = strategy_choice(env, strategy)
    steps = create_steps(name)
    with guard(env.state, env.name, command):
        ctx = begin_op(env, "snapshot", command=command,
                       data={"strategy": name, "strategy_why": why, "rp": new_id(), "label": label},
                       from_versions=dict(env.record.versions), restore_point=None)
        try:
            run_steps(ctx, steps)
        except StepFailed as e:
            begun = [t["step"] for t in ctx.timeline]
            undo_steps(ctx, steps, begun)
            end_op(ctx, "failed", error=e.message)
            raise
        end_op(ctx, "succeeded")
    rp = get(env.state, ctx.data["rp"])
    tl = {t["step"]: t for t in ctx.timeline}
    downtime = rp.downtime_s  # clone: the window the databases were closed
    if "stop_services" in tl:
        downtime = round(tl["start_services"]["start_s"] + tl["start_services"]["duration_s"]
                         - tl["stop_services"]["start_s"], 3)
    return RestorePointCreated(restore_point=rp, op=ctx.op, strategy_why=why, timeline=ctx.timeline,
                               downtime_s=downtime, capture_s=tl["capture"]["duration_s"])


def prune_plan(points: list[RestorePoint], retention: Retention, now: float,
               protected: set[str] | frozenset[str] = frozenset()) -> list[tuple[RestorePoint, str]]:
    """Which restore points retention deletes: not among the newest ``keep_last`` of their
    environment, older than ``max_age_days``, and not protected (in use by an operation)."""
    out = []
    by_env: dict[str, list[RestorePoint]] = {}
    for rp in points:
        by_env.setdefault(rp.env, []).append(rp)
    for rps in by_env.values():
        rps.sort(key=lambda r: r.created_at, reverse=True)
        for i, rp in enumerate(rps):
            age_d = (now - rp.created_at) / 86400
            if i < retention.keep_last or age_d < retention.max_age_days or rp.id in protected:
                continue
            out.append((rp, f"older than {retention.max_age_days:g} days ({age_d:.1f}) and not among the "
                            f"newest {retention.keep_last}"))
    return out


def prune(env: Environment, *, keep_last: int | None = None, max_age_days: float | None = None,
          quarantine_days: float | None = None, dry_run: bool = False,
          command: str = "snapshot prune") -> dict[str, Any]:
    """Apply retention (``policies.retention``, overridable) to restore points and quarantines."""
    from upgrade_infra.restore import quarantine

    pol = env.manifest.policies.retention
    ret = Retention.model_construct(
        keep_last=pol.keep_last if keep_last is None else keep_last,
        max_age_days=pol.max_age_days if max_age_days is None else max_age_days,
        quarantine_days=pol.quarantine_days if quarantine_days is None else quarantine_days)
    if ret.keep_last < 1 or ret.max_age_days < 0 or ret.quarantine_days < 0:
        raise BadInput(f"bad retention {ret.model_dump()}", fix="--keep-last >= 1, ages >= 0 (days)")
    with env_lock(env.state, env.name, command):
        protected = protected_points(env)
        plan = prune_plan(list_points(env.state, env.name), ret, time.time(), protected)
        partial = [i for i in incomplete_ids(env.state) if i not in protected]
        qplan = quarantine.prune_plan(env, ret.quarantine_days)
        if not dry_run:
            for rp, _ in plan:
                delete(env, rp.id)
            for i in partial:
                delete(env, i)
            for q in qplan:
                quarantine.delete(env, q["op"])
    return {"dry_run": dry_run, "retention": ret.model_dump(),
            "deleted": [{"id": rp.id, "reason": why} for rp, why in plan],
            "incomplete_deleted": partial, "quarantines_deleted": [q["op"] for q in qplan],
            "kept": [r.id for r in list_points(env.state, env.name)] if not dry_run else None}


#: operations whose restore point a plain `rollback` returns to (``pg-major``: `upgrade --postgres`)
UPGRADE_KINDS = ("upgrade", "pg-major")


def in_effect(env: Environment) -> list[str]:
    """Restore points of the upgrades still in effect, oldest first (a rollback pops them)."""
    stack: list[str] = []
    for o in history(env.state, env.name):
        if o.kind in UPGRADE_KINDS and o.outcome == "succeeded" and o.restore_point:
            stack.append(o.restore_point)
        elif o.kind == "rollback" and o.outcome == "succeeded" and o.restore_point in stack:
            del stack[stack.index(o.restore_point):]
    return stack


def protected_points(env: Environment) -> set[str]:
    """Restore points prune must keep: the way back from upgrades in effect, and unfinished operations."""
    out = set(in_effect(env))
    for o in Journal(env.state, env.name).operations():
        if not o.finished and (o.restore_point or o.data.get("rp")):
            out.add(o.restore_point or o.data["rp"])
    return out


@register_recovery("snapshot")
def _recover_create(env: Environment, inc: OpSummary, command: str, *, prefer: str) -> dict[str, Any]:
    """An interrupted ``snapshot create`` is undone (its partial restore point removed)."""
    ctx = resume_ctx(env, inc)
    undone = undo_steps(ctx, create_steps(inc.data.get("strategy", "clone")), [s.name for s in inc.steps])
    end_op(ctx, "recovered", error="interrupted; undone")
    return {"action": "undone", "undone": undone}
