"""Operations as a list of small steps, each with its inverse, run under the journal.

``run_steps`` journals ``step-begin`` (fsynced) before a step acts and ``step-end`` after it, with
its duration and result; results are kept in ``ctx.results`` so later steps (and a later
``resume`` reading the journal) know what earlier ones did. ``undo_steps`` runs the inverses of the
steps that began, newest first. Every step is idempotent: re-running one that a crash interrupted
finishes it. Fault injection (:mod:`upgrade_infra.core.faults`) fires at each step boundary.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from upgrade_infra.core import faults
from upgrade_infra.core.errors import OperationFailed, UpgradeInfraError
from upgrade_infra.core.journal import Journal, OpSummary, new_op_id
from upgrade_infra.core.registry import GROUPS, Registry

#: an :class:`upgrade_infra.backends.Environment` (core sits below the backends and never imports them)
Environment = Any


@dataclass
class Step:
    name: str
    run: Callable[[Ctx], dict[str, Any] | None]
    undo: Callable[[Ctx], dict[str, Any] | None] | None = None
    budgeted: bool = True  # counts towards the operation's time budget
    doc: str = ""


@dataclass
class Ctx:
    env: Environment
    op: str
    kind: str
    journal: Journal
    data: dict[str, Any] = field(default_factory=dict)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def budgeted_s(self) -> float:
        return round(sum(t["duration_s"] for t in self.timeline if t.get("budgeted")), 3)


class StepFailed(OperationFailed):
    def __init__(self, step: str, cause: BaseException, ctx: Ctx) -> None:
        msg = cause.message if isinstance(cause, UpgradeInfraError) else f"{type(cause).__name__}: {cause}"
        super().__init__(f"{ctx.kind} of {ctx.env.name} failed at step {step}: {msg}",
                         fix=getattr(cause, "fix", None), step=step, op=ctx.op)
        self.step = step
        self.cause = cause
        self.exit_code = getattr(cause, "exit_code", self.exit_code)


def begin_op(env: Environment, kind: str, *, command: str = "", parent: str | None = None,
             data: dict[str, Any] | None = None, **fields: Any) -> Ctx:
    ctx = Ctx(env, new_op_id(), kind, Journal(env.state, env.name), dict(data or {}))
    ctx.journal.start(ctx.op, kind, command=command, parent=parent, data=ctx.data, **fields)
    return ctx


def resume_ctx(env: Environment, summary: OpSummary) -> Ctx:
    """The context of an operation a crash interrupted, rebuilt from the journal."""
    ctx = Ctx(env, summary.op, summary.kind, Journal(env.state, env.name), dict(summary.data))
    ctx.results = {s.name: s.result for s in summary.steps if s.status == "ok"}
    # the timeline covers the whole operation: the steps done before the interruption (from the
    # journal) and, appended by run_steps, the ones run now; offsets count from the operation's start
    ctx.started = time.monotonic() - (time.time() - summary.started_at)
    budgeted = {s.name: s.budgeted for s in _steps_of(RECOVERY.get(summary.kind, None), summary.data)}
    ctx.timeline = [{"step": s.name, "start_s": round(s.started_at - summary.started_at, 3),
                     "duration_s": s.duration_s or 0.0, "status": "ok", "budgeted": budgeted.get(s.name, True),
                     "before_resume": True} for s in summary.steps if s.status == "ok"]
    return ctx


def _steps_of(handler: Recovery | None, data: dict[str, Any]) -> list[Step]:
    """The step list of an operation kind, from its recovery handler (for which of its steps count
    towards the budget); none known: every step counts."""
    if handler is None or handler.steps is None:
        return []
    try:
        return handler.steps(data)
    except Exception:  # noqa: BLE001 - an unknown strategy: every step counts
        return []


def end_op(ctx: Ctx, outcome: str, error: str | None = None, **fields: Any) -> None:
    ctx.journal.append("op-end", ctx.op, outcome=outcome, error=error,
                       duration_s=round(time.monotonic() - ctx.started, 3), **fields)


def note(ctx: Ctx, **fields: Any) -> None:
    ctx.journal.append("note", ctx.op, **fields)


def run_steps(ctx: Ctx, steps: Sequence[Step], *, skip: set[str] | frozenset[str] = frozenset(),
              on_step: Callable[[dict[str, Any]], None] | None = None) -> None:
    for step in steps:
        if step.name in skip:
            continue
        ctx.journal.append("step-begin", ctx.op, step=step.name)
        t0 = time.monotonic()
        entry = {"step": step.name, "start_s": round(t0 - ctx.started, 3), "budgeted": step.budgeted}
        try:
            faults.maybe_fail(ctx.kind, step.name)
            result = step.run(ctx) or {}
        except BaseException as e:
            entry.update(duration_s=round(time.monotonic() - t0, 3), status="failed", error=str(e)[:500])
            ctx.timeline.append(entry)
            ctx.journal.append("step-end", ctx.op, step=step.name, status="failed",
                               duration_s=entry["duration_s"], error=str(e)[:2000])
            if isinstance(e, KeyboardInterrupt | SystemExit):
                raise
            raise StepFailed(step.name, e, ctx) from e
        entry.update(duration_s=round(time.monotonic() - t0, 3), status="ok")
        ctx.timeline.append(entry)
        ctx.results[step.name] = result
        ctx.journal.append("step-end", ctx.op, step=step.name, status="ok", duration_s=entry["duration_s"],
                           result=result)
        if on_step:
            on_step(entry)


def undo_steps(ctx: Ctx, steps: Sequence[Step], begun: Sequence[str]) -> list[dict[str, Any]]:
    """Run the inverses of the steps in ``begun``, newest first; returns what each did."""
    done = []
    for step in reversed(steps):
        if step.name not in begun or step.undo is None:
            continue
        ctx.journal.append("undo-begin", ctx.op, step=step.name)
        faults.maybe_fail(ctx.kind, f"undo_{step.name}")
        t0 = time.monotonic()
        result = step.undo(ctx) or {}
        d = round(time.monotonic() - t0, 3)
        ctx.journal.append("undo-end", ctx.op, step=step.name, duration_s=d, result=result)
        ctx.timeline.append({"step": f"undo {step.name}", "start_s": round(t0 - ctx.started, 3),
                             "duration_s": d, "status": "ok", "budgeted": True})
        done.append({"step": step.name, **result})
    return done


def run_or_undo(env: Environment, kind: str, steps: Sequence[Step], *, command: str = "",
                data: dict[str, Any] | None = None, **fields: Any) -> Ctx:
    """Begin operation ``kind`` and run ``steps``; a failed step (or Ctrl-C) runs the inverses of the
    steps that began, newest first, ends the operation ``failed`` and re-raises. On success the
    operation is left for the caller to end (``end_op``), with what it wants to record."""
    ctx = begin_op(env, kind, command=command, data=data, **fields)
    try:
        run_steps(ctx, steps)
    except BaseException as e:
        undo_steps(ctx, steps, [t["step"] for t in ctx.timeline])
        end_op(ctx, "failed", error=e.message if isinstance(e, StepFailed) else type(e).__name__)
        raise
    return ctx


def step_names(steps: Sequence[Step]) -> list[str]:
    return [s.name for s in steps]


def require_no_incomplete(env: Environment) -> None:
    """Refuse to start a new operation while an interrupted one waits to be finished."""
    from upgrade_infra.core.lock import require_idle

    require_idle(env.state, env.name)


# -- recovery of interrupted operations, by kind ------------------------------------------------------
Finish = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class Recovery:
    """How ``upgrade-infra resume ENV`` finishes an interrupted operation of ``kind``.

    ``finish(env, summary, command, *, prefer)`` gets the operation's journal summary, must end the
    operation (``end_op``) and returns what it did (``action``, ...); ``prefer`` is ``"rollback"`` when
    a rollback asked (an upgrade whose steps all finished is then rolled back, not completed).
    ``steps(data)`` is the operation's step list (which steps count towards its time budget)."""

    kind: str
    finish: Finish
    steps: Callable[[dict[str, Any]], Sequence[Step]] | None = None


def _recovery(kind: str, obj: Any) -> Recovery:
    return obj if isinstance(obj, Recovery) else Recovery(kind, obj)


#: recovery handlers by operation kind (the journal's ``kind``); the built-ins and third-party ones
#: register through the ``upgrade_infra.recovery_handlers`` entry-point group
RECOVERY: Registry[Recovery] = Registry("recovery handler", GROUPS["recovery handler"], adapt=_recovery)


def register_recovery(kind: str, *, steps: Callable[[dict[str, Any]], Sequence[Step]] | None = None
                      ) -> Callable[[Finish], Finish]:
    """Decorator on the ``finish`` function of operations of ``kind`` (see :class:`Recovery`)."""
    def deco(fn: Finish) -> Finish:
        RECOVERY.add(kind, Recovery(kind, fn, steps))
        return fn

    return deco
