"""PostgreSQL major upgrade, side by side: ``upgrade-infra upgrade ENV --postgres 16``.

Never in place: a new server of the target image is loaded into a new volume beside the live one, then
the environment is switched to it; the old volume and image are kept, untouched, as the way back (a
``pg-volume`` restore point, :mod:`upgrade_infra.restore.pgvolume`). Backends with the ``ServerVolumes``
capability only (compose); elsewhere refused with exit 2 before anything is touched.

Checks first, under the environment's lock, nothing changed when they fail (exit 2): the target image
exists locally and is another, newer major; every extension each database uses (``pg_extension``) is
available in the target image (``pg_available_extensions`` of a short-lived container of it), the
missing ones named per database; the disk has room for the new volume.

Steps and their inverses (journaled, kind ``pg-major``)::

    preflight        the checks' results                      (read-only)
    stop_services                                             <- start the services again
    fingerprint      the databases' fingerprint, saved        (read-only)
    restore_point    pg-volume: the live server (volume, image ID, major) + data dirs   <- delete it
    create_server    new volume + side container of the target image   <- remove both
    load             pg_dumpall | psql inside the new container, streamed from the old server
    switch_server    PostgreSQL on the new volume and image   <- rollback to the restore point
    verify_data      fingerprint of the new server equal to the saved one
    start_services   readiness of every service
    smoke            smoke checks
    watch            smoke checks repeated for the watch window

A failure before ``switch_server`` undoes what ran (the old server never stopped); from
``switch_server`` on, the environment is rolled back to the restore point (old volume and image, the new
volume in the quarantine), as ``upgrade`` does. ``resume`` finishes an interrupted one the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upgrade_infra.backends.interface import MissingCapability, ServerVolumes
from upgrade_infra.core import fsutil, sql
from upgrade_infra.core.errors import BadInput, CheckFailed
from upgrade_infra.core.journal import Journal, OpSummary
from upgrade_infra.core.lock import guard
from upgrade_infra.core.state import atomic_write_json
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
from upgrade_infra.operations import notify, rollback, upgrade
from upgrade_infra.operations.results import UpgradeResult
from upgrade_infra.restore import fingerprint as fplib
from upgrade_infra.restore import points as snapshots
from upgrade_infra.restore.meta import new_id
from upgrade_infra.restore.pgvolume import OP_KIND

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment

STRATEGY = "pg-volume"
CHANGES_DATA = ("switch_server", "verify_data", "start_services", "smoke", "watch")
#: a logical copy takes about the databases' size again in the new volume (indexes rebuilt compactly)
SPACE_FACTOR = 1.2
#: extensions every cluster has (the dump never creates them)
BUILTIN = frozenset({"plpgsql"})
EXTENSIONS = "SELECT extname AS name, extversion AS version FROM pg_extension ORDER BY 1"
# the databases pg_dumpall copies: every one that accepts connections, but template0
DATABASES = "SELECT datname FROM pg_database WHERE datallowconn AND datname <> 'template0' ORDER BY 1"


class ExtensionsMissing(BadInput):
    """The target image lacks extensions the databases use (exit 2, nothing changed)."""


class NotCompose(MissingCapability):
    """The environment's backend cannot run two servers side by side (exit 2)."""


def server_volumes(env: Environment) -> ServerVolumes:
    if not env.has(ServerVolumes):
        raise NotCompose(f"a PostgreSQL major upgrade runs the new server side by side in a new volume, which the "
                         f"{env.backend_name!r} backend of {env.name!r} does not offer",
                         fix="run the environment on the compose backend (environments.<env>.backend: compose); "
                             "for a local cluster use pg_upgrade by hand", backend=env.backend_name,
                         missing="ServerVolumes")
    return env.capability(ServerVolumes)


# -- the checks (read-only) ------------------------------------------------------------------------
def used_extensions(env: Environment) -> dict[str, dict[str, str]]:
    """database -> extension -> installed version, for every database pg_dumpall copies."""
    out: dict[str, dict[str, str]] = {}
    for db in [r["datname"] for r in sql.fetch(env.conninfo(), DATABASES, read_only=True)]:
        out[db] = {r["name"]: r["version"] for r in sql.fetch(env.conninfo(db), EXTENSIONS, read_only=True)}
    return out


def extension_report(used: dict[str, dict[str, str]], available: dict[str, str]) -> dict[str, Any]:
    """Per database: the extensions missing from the target, and the ones whose version changes (the
    dump's ``CREATE EXTENSION`` installs the target's default version)."""
    missing = {db: sorted(e for e in exts if e not in available and e not in BUILTIN) for db, exts in used.items()}
    changed = {db: {e: f"{v} -> {available[e]}" for e, v in exts.items()
                    if e in available and available[e] and available[e] != v and e not in BUILTIN}
               for db, exts in used.items()}
    return {"used": used, "missing": {db: m for db, m in missing.items() if m},
            "version_changes": {db: c for db, c in changed.items() if c}}


def check(env: Environment, target: str) -> dict[str, Any]:
    """Everything that must hold before the upgrade; raises (exit 2) when something does not."""
    vols = server_volumes(env)
    env.start_database()
    image = vols.resolve_image(target)
    current = vols.current()
    probe = vols.probe_image(image)  # ImageMissing (exit 2) when not on the engine
    if probe["major"] == current["major"]:
        raise BadInput(f"{env.name} already runs PostgreSQL {current['major']} ({current['image']}); {image} is "
                       f"the same major", fix="name a newer major, e.g. --postgres "
                                              f"{current['major'] + 1}")
    if probe["major"] < current["major"]:
        raise BadInput(f"{image} is PostgreSQL {probe['major']}, older than the {current['major']} {env.name} runs: "
                       "a dump of a newer major does not load into an older one",
                       fix=f"to go back after a major upgrade use `upgrade-infra rollback {env.name}`")
    exts = extension_report(used_extensions(env), probe["extensions"])
    if exts["missing"]:
        per_db = "; ".join(f"{db}: {', '.join(m)}" for db, m in sorted(exts["missing"].items()))
        raise ExtensionsMissing(
            f"{image} (PostgreSQL {probe['major']}) lacks extensions the databases of {env.name} use: {per_db}; "
            "nothing was changed", fix=f"use an image of PostgreSQL {probe['major']} with those extensions "
                                       f"installed (e.g. build one FROM {image}), then run the upgrade again",
            missing=exts["missing"], image=image)
    sizes = sql.database_sizes(env.conninfo())
    need = int(sum(sizes.values()) * SPACE_FACTOR)
    free = vols.free_bytes()
    if free is not None:
        fsutil.require_space(Path(free[1]), need, f"the new PostgreSQL {probe['major']} volume of {env.name}")
    return {"image": image, "image_id": probe["image_id"], "from": current, "to_major": probe["major"],
            "extensions": exts, "bytes_needed": need, "free_bytes": free[0] if free else None}


# -- the steps -------------------------------------------------------------------------------------
def _work_dir(ctx: Ctx) -> Path:
    d = ctx.env.dir / "pg-major" / ctx.op
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d


def _preflight(ctx: Ctx) -> dict[str, Any]:
    return {k: ctx.data["plan"][k] for k in ("image", "to_major", "bytes_needed")}


def _fingerprint(ctx: Ctx) -> dict[str, Any]:
    fp = fplib.fingerprint(ctx.env)
    path = _work_dir(ctx) / "before.json"
    atomic_write_json(path, fp.to_dict(), mode=0o600)
    return {"path": str(path), "tables": len(fp.tables), "rows": fp.total_rows(), "seconds": fp.seconds}


def _capture(ctx: Ctx) -> dict[str, Any]:
    plan = ctx.data["plan"]
    rp = snapshots.capture(ctx.env, STRATEGY, op=ctx.op, rp_id=ctx.data["rp"], why="PostgreSQL major upgrade",
                           label=f"before PostgreSQL {plan['from']['major']} -> {plan['to_major']} ({ctx.op})")
    note(ctx, restore_point=rp.id)
    return {"restore_point": rp.id, "bytes": rp.bytes}


def _drop_rp(ctx: Ctx) -> dict[str, Any]:
    """Undone before the switch: the restore point (the live volume) means nothing; data dir copies go."""
    snapshots.delete(ctx.env, ctx.data["rp"])
    return {"deleted": ctx.data["rp"]}


def _create(ctx: Ctx) -> dict[str, Any]:
    return server_volumes(ctx.env).create_server(ctx.op, ctx.data["plan"]["image"])


def _remove_new(ctx: Ctx) -> dict[str, Any]:
    vols = server_volumes(ctx.env)
    planned = vols.planned(ctx.op)
    vols.remove_server(planned)
    return {"removed": planned["volume"]}


def switched(ctx: Ctx) -> bool:
    """Whether the environment runs another server than before the upgrade (only then is there
    anything to roll back; before, undoing the steps that ran is enough)."""
    return server_volumes(ctx.env).current()["volume"] != ctx.data["plan"]["from"]["volume"]


def _load(ctx: Ctx) -> dict[str, Any]:
    return server_volumes(ctx.env).load(ctx.results["create_server"], ctx.env.manifest.migration.timeout_s)


def _switch(ctx: Ctx) -> dict[str, Any]:
    replaced = server_volumes(ctx.env).switch(ctx.results["create_server"])
    return {"server": server_volumes(ctx.env).current(), "replaced": replaced}


def _verify(ctx: Ctx) -> dict[str, Any]:
    before = fplib.DataFingerprint.from_dict(json.loads(Path(ctx.results["fingerprint"]["path"]).read_text()))
    after = fplib.fingerprint(ctx.env)
    diff = before.diff(after)
    if diff:
        raise CheckFailed(f"the data differs after the copy to PostgreSQL {ctx.data['plan']['to_major']}: "
                          f"{'; '.join(str(d) for d in diff[:5])}", differences=[d.to_dict() for d in diff[:50]])
    return {"equal": True, "tables": len(after.tables), "rows": after.total_rows(), "postgres": after.postgres,
            "seconds": after.seconds}


def _smoke(ctx: Ctx) -> dict[str, Any]:
    return rollback.require_smoke(ctx.env, f"after the PostgreSQL major upgrade of {ctx.env.name}")


def major_steps() -> list[Step]:
    return [Step("preflight", _preflight), Step("stop_services", upgrade.stop_step, upgrade.start_step),
            Step("fingerprint", _fingerprint), Step("restore_point", _capture, _drop_rp),
            Step("create_server", _create, _remove_new), Step("load", _load),
            Step("switch_server", _switch), Step("verify_data", _verify), Step("start_services", upgrade.start_step),
            Step("smoke", _smoke), Step("watch", upgrade.watch_step)]


# -- the operation ---------------------------------------------------------------------------------
def upgrade_postgres(env: Environment, target: str, *, command: str = "upgrade --postgres",
                     watch_s: float | None = None) -> UpgradeResult:
    """Upgrade ``env``'s PostgreSQL to ``target`` (a major, ``"16"``, or an image reference), side by side.

    Returns an :class:`UpgradeResult` (``outcome`` succeeded or rolled-back; ``from_versions`` /
    ``to_versions`` carry ``postgres``: the majors). Checks failing raise (exit 2) with nothing changed.
    """
    server_volumes(env)
    with guard(env.state, env.name, command):
        plan = check(env, target)
        frm = {"postgres": str(plan["from"]["major"])}
        to = {"postgres": str(plan["to_major"])}
        data = {"rp": new_id(), "strategy": STRATEGY, "plan": plan, "from_versions": frm, "to_versions": to}
        if watch_s is not None:
            data["watch_s"] = watch_s
        ctx = begin_op(env, OP_KIND, command=command, from_versions=frm, to_versions=to, data=data)
        steps = major_steps()
        try:
            run_steps(ctx, steps)
        except StepFailed as e:
            return upgrade.after_failure(env, ctx, steps, e, command, changed_data=lambda begun: any(
                s in begun for s in CHANGES_DATA) and switched(ctx))
        end_op(ctx, "succeeded")
        res = upgrade.result(ctx, "succeeded")
        res.notifications = notify.send(env.manifest, upgrade.event(ctx, "upgrade", "succeeded", res))
        return res


# -- after a crash: `upgrade-infra resume ENV` ------------------------------------------------------
@register_recovery(OP_KIND, steps=lambda data: major_steps())
def _recover(env: Environment, inc: OpSummary, command: str, *, prefer: str) -> dict[str, Any]:
    ctx = resume_ctx(env, inc)
    children = [o for o in Journal(env.state, env.name).operations() if o.parent == inc.op and o.kind == "rollback"]
    if any(c.outcome == "succeeded" for c in children):
        end_op(ctx, "rolled-back", error="interrupted after its automatic rollback")
        return {"action": "closed (already rolled back)"}
    status = {s.name: s.status for s in inc.steps}
    names = [s.name for s in major_steps()]
    if prefer == "resume" and all(status.get(n) == "ok" for n in names):
        end_op(ctx, "succeeded", error=None)
        return {"action": "completed (every step had finished)"}
    if any(n in status for n in CHANGES_DATA) and switched(ctx):
        rb = rollback.run(env, inc.data["rp"], command=command, auto=True, parent=inc.op,
                          reason="interrupted PostgreSQL major upgrade")
        end_op(ctx, "rolled-back", error="interrupted; rolled back", rolled_back_by=rb.op)
        return {"action": "rolled back", "result": rb}
    undone = undo_steps(ctx, major_steps(), list(status))
    end_op(ctx, "rolled-back", error="interrupted before the switch; undone")
    return {"action": "undone", "undone": undone}
