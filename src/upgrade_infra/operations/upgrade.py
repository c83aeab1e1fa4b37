"""Guarded upgrades: restore point first, then switch, start, smoke checks and a watch window;
any failure rolls the environment back automatically (data kept in the quarantine).

Steps and their inverses (the journal records each before and after it runs)::

    preflight        versions exist, disk space              (read-only)
    stop_services                                           <- start the services again
    restore_point    capture (clone/dump/fs)                 <- delete it when unfinished
    spare            second copy for an O(1) rollback        (part of the restore point)
    switch_versions  environment record -> target versions  <- rollback to the restore point
    downgrade_schema declared downgrade commands, when going to an older release (see :mod:`.migrated`)
    start_services   migrations run on start, readiness     <- rollback to the restore point
    smoke            smoke checks                            (read-only)
    watch            smoke checks repeated for policies.watch_window_s

A failure before ``switch_versions`` undoes the steps that ran (nothing was changed); from
``switch_versions`` on, the environment is rolled back to the restore point.

Entry points take the :class:`~upgrade_infra.backends.Environment` they act on first (one environment,
which exists), and return typed results (:mod:`upgrade_infra.operations.results`): ``upgrade`` an
:class:`UpgradeResult`, ``recover`` (``resume``) a :class:`RecoveryResult`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from upgrade_infra.core.errors import BadInput, CommandFailed
from upgrade_infra.core.journal import Journal, OpSummary
from upgrade_infra.core.lock import guard
from upgrade_infra.core.steps import (
    Ctx,
    Step,
    StepFailed,
    begin_op,
    end_op,
    note,
    register_recovery,
    resume_ctx,
    run_steps,
    undo_steps,
)
from upgrade_infra.operations import migrated, notify, rollback
from upgrade_infra.operations.recovery import recover
from upgrade_infra.operations.results import UpgradeResult
from upgrade_infra.restore import datadirs as rp_datadirs
from upgrade_infra.restore import points as snapshots
from upgrade_infra.restore.meta import new_id
from upgrade_infra.restore.ops import drop_partial
from upgrade_infra.stack.pairs import parse_versions

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment

__all__ = ["parse_targets", "recover", "upgrade", "upgrade_steps"]  # recover: from .recovery, as before
CHANGES_DATA = ("switch_versions", "downgrade_schema", "start_services", "smoke", "watch")


def parse_targets(env: Environment, specs: list[str]) -> dict[str, str]:
    """``["assistant=1.1.0", ...]`` -> {service: version}, each checked against the manifest."""
    return parse_versions(specs, option="--to", manifest=env.manifest, required=True)


def _preflight(ctx: Ctx) -> dict[str, Any]:
    env = ctx.env
    st = snapshots.get_strategy(ctx.data["strategy"])
    from upgrade_infra.core import fsutil

    need = (st.estimate_bytes(env) + rp_datadirs.bytes_of(env)) * 2
    fsutil.require_space(env.state.root, need, f"the restore point (and its spare) of {env.name}")
    return {"estimated_bytes": need}


def stop_step(ctx: Ctx) -> dict[str, Any]:
    return {"stopped": ctx.env.stop_services()}


def start_step(ctx: Ctx) -> dict[str, Any]:
    return {"ready_s": ctx.env.start_services(port_wait_s=ctx.env.manifest.policies.stop_timeout_s)}


def _capture(ctx: Ctx) -> dict[str, Any]:
    rp = snapshots.capture(ctx.env, ctx.data["strategy"], op=ctx.op, rp_id=ctx.data["rp"],
                           why=ctx.data.get("strategy_why"),
                           label=f"before upgrade {ctx.op} to {_fmt(ctx.data['to_versions'])}")
    note(ctx, restore_point=rp.id)
    return {"restore_point": rp.id, "bytes": rp.bytes}


def _spare(ctx: Ctx) -> dict[str, Any]:
    return {"made": snapshots.make_spare(ctx.env, snapshots.get(ctx.env.state, ctx.data["rp"]))}


def _switch(ctx: Ctx) -> dict[str, Any]:
    ctx.env.record.versions.update(ctx.data["to_versions"])
    ctx.env.save()
    return {"versions": dict(ctx.env.record.versions)}


def _downgrade(ctx: Ctx) -> dict[str, Any]:
    """Run the declared downgrade command of each service going to an older release (newer code,
    which knows its migrations, takes the schema down to the target)."""
    env, done = ctx.env, []
    for d in ctx.data.get("downgrades") or []:
        svc = d["service"]
        if not env.manifest.service(svc).downgrade:
            continue  # --allow-downgrade: the older release runs on the newer schema
        frm = ctx.data["from_versions"][svc]
        r = env.run_job(svc, "downgrade", version=frm, timeout=env.manifest.migration.timeout_s,
                        to_version=d["to"], from_version=frm)
        if r.returncode != 0:
            raise CommandFailed(f"downgrade of {svc} {frm} -> {d['to']} exited {r.returncode}: "
                                f"{(r.stderr or r.stdout).strip()[-300:]}")
        done.append(svc)
    return {"downgraded": done}


def _start_new(ctx: Ctx) -> dict[str, Any]:
    return {"ready_s": ctx.env.start_services(port_wait_s=ctx.env.manifest.policies.stop_timeout_s)}


def _smoke(ctx: Ctx) -> dict[str, Any]:
    return rollback.require_smoke(ctx.env, f"after upgrading {ctx.env.name}")


def watch_step(ctx: Ctx) -> dict[str, Any]:
    window = float(ctx.data.get("watch_s", ctx.env.manifest.policies.watch_window_s))
    end, rounds = time.monotonic() + window, 0
    while True:
        rollback.require_smoke(ctx.env, f"during the {window:g}s watch window (round {rounds + 1})")
        rounds += 1
        if time.monotonic() >= end:
            return {"window_s": window, "rounds": rounds}
        time.sleep(min(1.0, max(0.0, end - time.monotonic())))


def upgrade_steps(strategy: str) -> list[Step]:
    snapshots.get_strategy(strategy)
    return [Step("preflight", _preflight), Step("stop_services", stop_step, start_step),
            Step("restore_point", _capture, drop_partial("restore_point")), Step("spare", _spare),
            Step("switch_versions", _switch), Step("downgrade_schema", _downgrade),
            Step("start_services", _start_new), Step("smoke", _smoke),
            Step("watch", watch_step)]


def _fmt(v: dict[str, str]) -> str:
    return ", ".join(f"{k}={x}" for k, x in v.items())


def upgrade(env: Environment, targets: dict[str, str], *, strategy: str | None = None, command: str = "upgrade",
            watch_s: float | None = None, allow_downgrade: bool = False) -> UpgradeResult:
    """Upgrade ``env`` to ``targets``; returns the result (``outcome``: succeeded or rolled-back).

    A target older than the release that last migrated its database is refused (exit 2) unless the
    service declares ``downgrade`` (run before the start) or ``allow_downgrade``.
    """
    strategy, why = snapshots.strategy_choice(env, strategy)
    with guard(env.state, env.name, command):
        if all(env.record.versions.get(s) == v for s, v in targets.items()):
            raise BadInput(f"{env.name} already runs {_fmt(targets)}", fix="name a different version")
        downgrades = migrated.guard(env, targets, allow_downgrade)
        frm = dict(env.record.versions)
        to = {**frm, **targets}
        env.check_runnable(to)  # e.g. an image missing on the engine: refused before anything stops
        data = {"rp": new_id(), "strategy": strategy, "strategy_why": why, "from_versions": frm, "to_versions": to,
                "downgrades": downgrades}
        if watch_s is not None:
            data["watch_s"] = watch_s
        ctx = begin_op(env, "upgrade", command=command, from_versions=frm, to_versions=to, data=data)
        steps = upgrade_steps(strategy)
        try:
            run_steps(ctx, steps)
        except StepFailed as e:
            return after_failure(env, ctx, steps, e, command)
        end_op(ctx, "succeeded")
        _record_migrated(ctx)
        res = result(ctx, "succeeded")
        res.notifications = notify.send(env.manifest, event(ctx, "upgrade", "succeeded", res))
        return res


def _record_migrated(ctx: Ctx) -> None:
    """The target versions migrated their databases, except an older release allowed onto a newer
    schema without a downgrade command (the database stays the newer release's)."""
    kept = {d["service"] for d in ctx.data.get("downgrades") or []
            if d["service"] not in (ctx.results.get("downgrade_schema") or {}).get("downgraded", [])}
    changed = {s: v for s, v in ctx.data["to_versions"].items()
               if v != ctx.data["from_versions"].get(s) and s not in kept}
    if changed:
        migrated.record(ctx.env, changed, ctx.op)


def after_failure(env: Environment, ctx: Ctx, steps: list[Step], e: StepFailed, command: str, *,
                  changed_data: Callable[[list[str]], bool] | None = None) -> UpgradeResult:
    """A step failed: undo what ran when nothing was changed yet (``changed_data(begun steps)``, default: a
    step of CHANGES_DATA began), else roll back to the operation's restore point; the typed result."""
    begun = [t["step"] for t in ctx.timeline]
    changed = changed_data(begun) if changed_data else any(s in begun for s in CHANGES_DATA)
    if not changed:
        undo_steps(ctx, steps, begun)
        end_op(ctx, "failed", error=e.message)
        notify.send(env.manifest, event(ctx, "upgrade.failed", "failed", error=e.message))
        raise e
    try:
        rb = rollback.run(env, ctx.data["rp"], command=f"{command} (automatic rollback)", auto=True,
                          parent=ctx.op, reason=e.message)
    except StepFailed as rb_err:
        end_op(ctx, "failed", error=f"{e.message}; automatic rollback failed: {rb_err.message}")
        raise
    end_op(ctx, "rolled-back", error=e.message, rolled_back_by=rb.op)
    res = result(ctx, "rolled-back", error=e.message, failed_step=e.step)
    res.rollback = rb
    res.notifications = notify.send(env.manifest, event(ctx, "upgrade.failed", "rolled-back", res))
    return res


def result(ctx: Ctx, outcome: str, **extra: Any) -> UpgradeResult:
    tl = {t["step"]: t for t in ctx.timeline}
    down = None
    if "stop_services" in tl and "start_services" in tl:
        down = round(tl["start_services"]["start_s"] + tl["start_services"]["duration_s"]
                     - tl["stop_services"]["start_s"], 3)
    return UpgradeResult(op=ctx.op, environment=ctx.env.name, outcome=outcome, restore_point=ctx.data["rp"],
                         from_versions=ctx.data["from_versions"], to_versions=ctx.data["to_versions"],
                         versions=dict(ctx.env.record.versions), steps=ctx.timeline, downtime_s=down,
                         total_s=round(time.monotonic() - ctx.started, 3), **extra)


def event(ctx: Ctx, name: str, outcome: str, res: UpgradeResult | None = None, *,
           error: str | None = None) -> dict[str, Any]:
    return notify.event(name, ctx.env.name, operation=ctx.op, outcome=outcome, restore_point=ctx.data["rp"],
                        from_versions=ctx.data["from_versions"], to_versions=ctx.data["to_versions"],
                        total_s=res.total_s if res else None, error=res.error if res else error)


# -- recovery after a crash (``recover`` in :mod:`.recovery` dispatches to it) ----------------------
@register_recovery("upgrade", steps=lambda data: upgrade_steps(data.get("strategy", "clone")))
def _recover_upgrade(env: Environment, inc: OpSummary, command: str, *, prefer: str) -> dict[str, Any]:
    ctx = resume_ctx(env, inc)
    children = [o for o in Journal(env.state, env.name).operations() if o.parent == inc.op and o.kind == "rollback"]
    if any(c.outcome == "succeeded" for c in children):
        end_op(ctx, "rolled-back", error="interrupted after its automatic rollback")
        return {"action": "closed (already rolled back)"}
    status = {s.name: s.status for s in inc.steps}
    names = [s.name for s in upgrade_steps(inc.data["strategy"])]
    if prefer == "resume" and all(status.get(n) == "ok" for n in names):
        end_op(ctx, "succeeded", error=None)
        _record_migrated(ctx)
        return {"action": "completed (every step had finished)"}
    if any(n in status for n in CHANGES_DATA):
        rb = rollback.run(env, inc.data["rp"], command=command, auto=True, parent=inc.op,
                          reason="interrupted upgrade")
        end_op(ctx, "rolled-back", error="interrupted; rolled back", rolled_back_by=rb.op)
        return {"action": "rolled back", "result": rb}
    steps = upgrade_steps(inc.data["strategy"])
    undone = undo_steps(ctx, steps, list(status))
    end_op(ctx, "rolled-back", error="interrupted before any change; undone")
    return {"action": "undone", "undone": undone}
