"""Staging environments: isolated, production-like copies with masked production data.

A staging env is an :class:`~upgrade_infra.core.state.EnvRecord` with ``kind="staging"``, ``source`` (the
environment it copies), its own port block (``staging.port_range``) and a TTL. Its lifecycle::

    create  checks (name, source running, masking rules vs the live schema, isolation, disk), then journaled
            steps: reserve -> copy databases -> copy data dirs -> mask -> leak check -> commit
            -> restore point -> start services -> verify health. A failure undoes every step: nothing
            is left half-created.
    sync    the same copy into the existing env (the new data sits beside the old until commit)
    reset   back to the restore point taken right after the last sync
    destroy / gc (expired ones)

Extra facts about a staging env (strategy, masking and leak-check reports, restore point) live in
``envs/<name>/staging.json``. Listing and metrics live in :mod:`upgrade_infra.staging.info`.

Entry points take a :class:`~upgrade_infra.operations.session.Session` first (they open the staging
env and its source by name), and return typed results (:mod:`upgrade_infra.staging.results`):
``create``/``sync_env`` a :class:`StagingReady`, ``reset`` a :class:`StagingReset`, ``destroy`` a
:class:`StagingDestroyed`.
"""

from __future__ import annotations

import re
import time
from typing import Any

from upgrade_infra.backends import Environment
from upgrade_infra.backends import registry as backends
from upgrade_infra.core.errors import BadInput, RefusedToTouchProduction, UnknownName
from upgrade_infra.core.lock import guard, open_operation
from upgrade_infra.core.state import EnvRecord
from upgrade_infra.core.steps import Ctx, Step, end_op, resume_ctx
from upgrade_infra.operations.session import Session
from upgrade_infra.restore import meta as rp_meta
from upgrade_infra.restore import points as snapshots
from upgrade_infra.stack.manifest import NAME, parse_duration
from upgrade_infra.staging import isolation, sync
from upgrade_infra.staging.info import META, load_meta, save_meta
from upgrade_infra.staging.results import StagingDestroyed, StagingReady, StagingReset
from upgrade_infra.staging.steps import RP_LABEL, SyncRun, data_steps, others, prechecks, run_op
from upgrade_infra.staging.sync.base import Progress, no_progress


# -- checks that run before anything is created ----------------------------------------------------
def default_name(s: Session) -> str:
    taken = set(s.state.env_names()) | set(s.manifest.environments)
    return next(n for n in ["staging", *(f"staging-{i}" for i in range(2, 1000))] if n not in taken)


def _check_name(s: Session, name: str) -> None:
    if not re.match(NAME, name):
        raise BadInput(f"bad staging name {name!r}", fix="use lowercase letters, digits, '-' or '_', starting "
                       "with a letter (at most 40 characters)")
    if name in s.manifest.environments:
        raise RefusedToTouchProduction(f"{name!r} is an environment of the manifest, not a staging env",
                                       fix="choose another name, e.g. staging")
    if s.state.load_record(name) or s.state.env_dir(name).exists():
        raise BadInput(f"environment name {name!r} is in use (see `upgrade-infra stage list`)",
                       fix=f"choose another name, or `upgrade-infra stage destroy {name}` first")


def _source(s: Session, source: str) -> Environment:
    rec = s.state.load_record(source)
    if rec is None:
        if source in s.manifest.environments:
            raise BadInput(f"environment {source!r} has not been created yet",
                           fix=f"bring it up first: `upgrade-infra env up {source}`")
        raise UnknownName(f"unknown source environment {source!r}",
                          fix=f"use one of: {', '.join(s.state.env_names()) or 'none (run env up)'}")
    return s.env(source)


def _versions(s: Session, base: dict[str, str], override: dict[str, str] | None) -> dict[str, str]:
    out = dict(base)
    for svc, ver in (override or {}).items():
        s.manifest.version_of(svc, ver)  # UnknownName naming the service/version and the choices
        out[svc] = ver
    return out


def _reading(s: Session, src: Environment, command: str, stop_source: bool, strat: Any = None):
    """The source is only read (shared lock: never during its upgrade, and no upgrade starts while it
    is copied), unless ``--stop-source`` stops its services for a physical copy, or the sync method
    may take a restore point of it (``cow``): then exclusive."""
    return guard(s.state, src.name, command,
                 shared=not (stop_source or getattr(strat, "changes_source", False)))


# -- lifecycle -------------------------------------------------------------------------------------
def create(s: Session, name: str | None = None, *, source: str = "production", versions: dict[str, str] | None = None,
           mask: bool | None = None, ttl: str | None = None, strategy: str | None = None,
           stop_source: bool = False, progress: Progress = no_progress) -> StagingReady:
    """Provision, copy, mask, snapshot, start and verify a new staging environment."""
    t0 = time.monotonic()
    state = s.state.ensure()
    name = name or default_name(s)
    _check_name(s, name)
    src = _source(s, source)
    mask = s.manifest.staging.mask if mask is None else mask
    ttl_s = parse_duration(ttl or s.manifest.staging.ttl)
    strat = sync.choose(src, strategy, stop_source=stop_source)
    placed = backends.backend(src.record.backend, name).new_backend_state(s.manifest, state, name, kind="staging")
    rec = EnvRecord(name=name, kind="staging", backend=src.record.backend, backend_state=placed,
                    versions=_versions(s, src.record.versions, versions), created_at=time.time(),
                    source=source, ttl_s=ttl_s)
    env = s.open(name, rec)
    r = SyncRun(s, env, src, strat, mask, progress, stop_source)
    with guard(state, name, f"stage create {name}"), _reading(s, src, f"stage create {name} --from {source}",
                                                               stop_source, strat):
        try:
            isolation.check(env, others(s, name))
            needed = prechecks(s, r)
        except BaseException:
            state.remove(state.secrets_dir(name), ignore_errors=True)  # generated while rendering the checks
            raise

        def reserve(ctx: Ctx) -> dict:
            env.save()
            save_meta(env, {"status": "creating", "strategy": strat.name, "mask": mask, "op": ctx.op})
            return {**env.placement(), "bytes_needed": needed}

        def unreserve(ctx: Ctx) -> dict:
            for rp in snapshots.list_points(state, name):
                snapshots.delete(env, rp.id)
            env.destroy()
            return {"removed": name}

        steps = [Step("reserve", reserve, unreserve), *data_steps(r)]
        ctx = run_op(r, "stage-create", f"stage create {name} --from {source}", steps,
                   {"source": source, "strategy": strat.name, "mask": mask})
        return _finish(r, ctx, "created", t0)


def _finish(r: SyncRun, ctx: Ctx, what: str, t0: float) -> StagingReady:
    env = r.env
    env.record.synced_at = time.time()
    env.save()
    res = ctx.results
    meta = {"status": "ready", "strategy": r.strategy.name, "mask": r.mask, "op": ctx.op,
            "synced_at": env.record.synced_at, "source_versions": dict(r.source.record.versions),
            "sync": res.get("copy_databases"), "data_dirs": res.get("copy_data_dirs"),
            "masking": res.get("mask"), "leak_check": res.get("leak_check"),
            "restore_point": res.get("restore_point", {}).get("restore_point")}
    save_meta(env, meta)
    total = round(time.monotonic() - t0, 3)
    ready = next((round(x["start_s"] + x["duration_s"], 3) for x in ctx.timeline if x["step"] == "verify_health"),
                 total)
    copied = res.get("copy_databases") or {}
    nbytes, copy_s = copied.get("bytes", 0), copied.get("seconds") or 0
    return StagingReady(what, env.name, source=r.source.name, strategy=r.strategy.name,
                        versions=env.record.versions, ports=env.ports, total_s=total,
                        ready_s=round(ready + ctx.started - t0, 3), mb=round(nbytes / 1e6, 1), copy_s=copy_s,
                        mb_per_s=round(nbytes / 1e6 / copy_s, 1) if copy_s else None, timeline=ctx.timeline,
                        meta=meta)


def _staging_env(s: Session, name: str) -> Environment:
    rec = s.state.require_record(name)
    if rec.kind != "staging":
        raise RefusedToTouchProduction(f"{name!r} is a {rec.kind} environment; stage commands act on staging only",
                                       fix="name a staging environment (see `upgrade-infra stage list`)")
    return s.env(name)


def sync_env(s: Session, name: str, *, versions: dict[str, str] | None = None, mask: bool | None = None,
             strategy: str | None = None, stop_source: bool = False, progress: Progress = no_progress) -> StagingReady:
    """Refresh a staging env from its source; its versions become the source's (or ``versions``)."""
    t0 = time.monotonic()
    env = _staging_env(s, name)
    src = _source(s, env.record.source or "production")
    meta = load_meta(env)
    mask = meta.get("mask", s.manifest.staging.mask) if mask is None else mask
    strat = sync.choose(src, strategy, stop_source=stop_source)
    r = SyncRun(s, env, src, strat, mask, progress, stop_source)
    with guard(s.state, name, f"stage sync {name}"), _reading(s, src, f"stage sync {name}", stop_source, strat):
        isolation.check(env, others(s, name))
        prechecks(s, r)
        old_versions = dict(env.record.versions)

        def set_versions(ctx: Ctx) -> dict:
            env.record.versions = _versions(s, src.record.versions, versions)
            env.save()
            return {"versions": env.record.versions}

        def unset_versions(ctx: Ctx) -> dict:
            env.record.versions = old_versions
            env.save()
            return {"versions": old_versions}

        steps = [Step("stop_services", r.stop, r.start), Step("set_versions", set_versions, unset_versions),
                 *data_steps(r)]
        ctx = run_op(r, "stage-sync", f"stage sync {name}", steps, {"source": src.name, "strategy": strat.name})
        return _finish(r, ctx, "synced", t0)


def reset(s: Session, name: str) -> StagingReset:
    """Back to the state right after the last sync: a rollback to the sync's restore point (the same
    journaled steps, O(1) swap of the restore point's spare clone, smoke checks; a failure is finished
    by `upgrade-infra resume`). Staging's discarded state is not worth a quarantine: it is deleted,
    and the per-table report and the notifications of a production rollback are skipped.
    """
    from upgrade_infra.operations import rollback
    from upgrade_infra.restore import quarantine

    env = _staging_env(s, name)
    rp_id = load_meta(env).get("restore_point")
    if not rp_id:
        raise BadInput(f"staging {name!r} has no restore point from its last sync",
                       fix=f"run `upgrade-infra stage sync {name}` (it takes one)")
    with guard(s.state, name, f"stage reset {name}"):
        isolation.check(env, others(s, name))
        r = rollback.run(env, rp_id, command=f"stage reset {name}", reason="stage reset", report=False,
                         announce=False)
        quarantine.delete(env, r.op)
    return StagingReset(name, rp_id, dict(r.versions), r.total_s, r.wall_s, r.op, r.steps)


def destroy(s: Session, name: str) -> StagingDestroyed:
    """Stop and remove a staging env: processes, cluster, data dirs, secrets, restore points."""
    return _remove(s, _staging_env(s, name), f"stage destroy {name}")


def remove_environment(s: Session, name: str) -> StagingDestroyed:
    """Remove any environment, production included (``env destroy NAME --yes``): its services and
    PostgreSQL, its databases and data (on Compose: the project's containers, network and volumes), its
    secrets, restore points and quarantines. What ``stage destroy`` does, without the staging-only check."""
    s.state.require_record(name)
    return _remove(s, s.env(name), f"env destroy {name}")


def _remove(s: Session, env: Environment, command: str) -> StagingDestroyed:
    name = env.name
    t0 = time.monotonic()
    # destroy is how a half-created staging env goes away (gc): an open operation does not stop it
    with guard(s.state, name, command, allow_open=True):
        from upgrade_infra.restore import quarantine

        points = snapshots.list_points(s.state, name)
        for rp in points:
            s.state.remove(rp_meta.rp_dir(s.state, rp.id), ignore_errors=True)  # databases go with the cluster
        for q in quarantine.list_all(s.state, name):
            s.state.remove(quarantine.qdir(s.state, q["op"]), ignore_errors=True)
        env.destroy()
        if (inc := open_operation(s.state, name)) is not None:
            end_op(resume_ctx(env, inc), "abandoned", error=f"environment destroyed ({command})")
    return StagingDestroyed(name, [p.id for p in points], round(time.monotonic() - t0, 3))


def discard(s: Session, name: str) -> StagingDestroyed | None:
    """Destroy staging env ``name`` if there is one (None when there is none); never anything but a
    staging environment (RefusedToTouchProduction)."""
    if s.state.load_record(name) is None:
        return None
    return destroy(s, name)


def fresh(s: Session, name: str, *, source: str = "production", **kw: Any) -> StagingReady:
    """A new staging copy ``name`` of ``source`` for a disposable run (a drill, a rehearsal): one of that
    name left behind by an interrupted run is destroyed first. ``discard`` removes it afterwards."""
    discard(s, name)
    return create(s, name, source=source, **kw)


def gc(s: Session, *, dry_run: bool = False, now: float | None = None) -> dict[str, Any]:
    """Destroy expired staging envs, and ones whose creation never finished (their process died)."""
    out = []
    for n in s.state.env_names():
        rec = s.state.load_record(n)
        if rec is None or rec.kind != "staging":
            continue
        status = load_meta(s.env(n)).get("status")
        why = "expired" if rec.expired(now) else ("never finished creating" if status == "creating" else None)
        if why is None:
            continue
        if why != "expired" and _locked(s, n):
            continue  # still being created by a live process
        out.append({"environment": n, "reason": why})
        if not dry_run:
            destroy(s, n)
    return {"dry_run": dry_run, "removed": out}


def _locked(s: Session, name: str) -> bool:
    from upgrade_infra.core.lock import holder

    h = holder(s.state, name)
    return bool(h and h.get("alive"))


__all__ = ["META", "RP_LABEL", "create", "default_name", "destroy", "discard", "fresh", "gc", "reset", "sync_env"]
