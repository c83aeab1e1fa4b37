"""Disaster recovery: move restore points to and from another place, and build an environment
from one (the machine-lost case).

``export`` writes a self-contained directory ``DIR/<id>/`` (0700, files 0600): a ``clone`` restore
point is converted to ``pg_dump -Fd`` dumps on the way (its databases live inside the cluster);
``dump`` and ``fs`` ones are copied. Every file is checksummed in the metadata and listed in
``SHA256SUMS`` (``sha256sum -c SHA256SUMS`` works without this tool). ``import_`` verifies all of
it before and after copying into the state dir. ``restore_env`` creates a new environment on its
own place (local: a port block) from a portable restore point and verifies it with the smoke checks.

All three are journaled operations (``history`` shows their steps) under the lock: a failed step
undoes what began, and ``upgrade-infra resume ENV`` after a kill removes what an interrupted one
left (a partial export or import, a half-built environment). Export and import only read their
environment (shared lock): an interrupted one does not make it half-done.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from upgrade_infra.backends import open_environment
from upgrade_infra.backends.registry import backend
from upgrade_infra.core import fsutil
from upgrade_infra.core.errors import BadInput, RestorePointError, UnknownName
from upgrade_infra.core.journal import OpSummary
from upgrade_infra.core.lock import READ_ONLY, guard
from upgrade_infra.core.state import EnvRecord, StateDir, atomic_write_json
from upgrade_infra.core.steps import Ctx, Step, end_op, register_recovery, resume_ctx, run_or_undo, undo_steps
from upgrade_infra.operations import rollback
from upgrade_infra.operations.session import readiness_check
from upgrade_infra.restore import points as snapshots
from upgrade_infra.restore.meta import (
    META,
    RestorePoint,
    new_id,
    private_files,
    rp_dir,
    save,
    verify_files,
)
from upgrade_infra.restore.meta import read as read_meta

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment
    from upgrade_infra.stack.manifest import Manifest


def _seal(rp: RestorePoint, d: Path) -> None:
    rp.checksum = rp.compute_checksum()
    atomic_write_json(d / META, rp.model_dump(), mode=0o600)
    lines = [f"{fsutil.sha256_file(d / rel)}  {rel}\n" for rel in [*sorted(rp.files), META]]
    (d / "SHA256SUMS").write_text("".join(lines))
    private_files(d)


def _require_checksums(base: Path, files: dict[str, str], what: str, *, fix: str) -> None:
    """A copy just made (an export, an import) must match the checksums of the restore point's files."""
    bad = verify_files(base, files)
    if bad:
        raise RestorePointError(f"{what} does not match its checksums: {'; '.join(bad[:3])}", fix=fix)


EXPORT_KIND, IMPORT_KIND, RESTORE_KIND = "snapshot-export", "snapshot-import", "env-restore"


def export(env: Environment, rp_id: str, dest: Path) -> dict[str, Any]:
    """Export restore point ``rp_id`` of ``env`` to ``dest/<id>/``, verified by checksum.

    A journaled operation of ``env`` (it only reads it: shared lock, and an interrupted export does
    not make ``env`` half-done); a failure removes the partial export, and so does ``resume ENV``
    after a kill."""
    t0 = time.monotonic()
    rp = snapshots.get(env.state, rp_id)
    src = rp_dir(env.state, rp.id)
    problems = snapshots.verify(env, rp)
    if problems:
        raise RestorePointError(f"restore point {rp_id} is damaged: {'; '.join(problems[:3])}",
                                fix="export another restore point")
    out = Path(dest).resolve() / rp.id
    if out.exists():
        raise BadInput(f"{out} already exists", fix="export to another directory or remove it")
    fsutil.require_space(out.parent, rp.bytes, f"the export of {rp.id}")
    command = f"snapshot export {rp.id} {dest}"
    with guard(env.state, env.name, command, shared=True):  # read: no upgrade under it
        new = rp.model_copy(deep=True)
        ctx = run_or_undo(env, EXPORT_KIND, _export_steps(env, rp, new, src, out), command=command,
                          restore_point=rp.id, data={"rp": rp.id, "path": str(out), READ_ONLY: True})
        end_op(ctx, "succeeded")
    return {"restore_point": rp.id, "path": str(out), "strategy": new.strategy, "files": len(new.files),
            "mb": round(new.bytes / 1e6, 1), "seconds": round(time.monotonic() - t0, 3)}


def _export_steps(env: Environment, rp: RestorePoint, new: RestorePoint, src: Path, out: Path) -> list[Step]:
    """prepare (the export's own directory; its inverse removes it) -> the strategy's export steps
    (``copy``, or ``dump_databases`` + ``copy_data_dirs`` for a restore point whose databases live
    in the cluster) -> seal (checksums)."""
    def prepare(ctx: Ctx) -> dict[str, Any]:
        out.mkdir(parents=True, mode=0o700)
        return {"path": str(out)}

    def unprepare(ctx: Ctx) -> dict[str, Any]:
        if "prepare" in ctx.results:  # made by this export (never a directory that was there before)
            shutil.rmtree(out, ignore_errors=True)
        return {"removed": str(out)}

    def seal(ctx: Ctx) -> dict[str, Any]:
        _require_checksums(out, new.files, f"export of {rp.id}", fix="check the destination disk and export again")
        _seal(new, out)
        return {"files": len(new.files), "bytes": new.bytes}

    # the strategy's own actions: a copy of a portable payload, or dumps + data dirs for one in the cluster
    middle = [Step(label, lambda ctx, fn=fn: fn())
              for label, fn in snapshots.get_strategy(rp.strategy).export_steps(env, rp, src, out, new)]
    return [Step("prepare", prepare, unprepare), *middle, Step("seal", seal)]


def read_export(src: Path) -> RestorePoint:
    """The restore point exported to ``src``: its metadata checked as every restore point's is
    (:func:`upgrade_infra.restore.meta.read`), then every file against its checksum."""
    src = Path(src)
    meta = src / META
    if not meta.is_file():
        raise BadInput(f"{src} is not an exported restore point (no {META})",
                       fix="pass the directory `snapshot export` wrote (DIR/<id>)")
    rp = read_meta(meta, f"export {src}", fix="use another copy of the export, unmodified", invalid=BadInput)
    bad = verify_files(src, rp.files)
    if bad:
        raise RestorePointError(f"export {src} is damaged: {'; '.join(bad[:3])}" + (" …" if len(bad) > 3 else ""),
                                fix="use another copy of the export", problems=bad)
    return rp


def import_(state: StateDir, src: Path) -> dict[str, Any]:
    """Copy an exported restore point into the state dir after verifying every checksum.

    A journaled operation of the restore point's environment (shared lock: it adds a restore point,
    it changes no environment): copied beside the others under a temporary name, verified, then
    renamed into place; a failure, or ``resume ENV`` after a kill, removes the temporary copy."""
    t0 = time.monotonic()
    rp = read_export(src)
    if not snapshots.get_strategy(rp.strategy).portable:
        raise BadInput(f"{src}: a {rp.strategy} restore point cannot be imported", fix="export it again")
    original = rp.id
    dst = rp_dir(state, rp.id)
    if dst.exists():
        try:
            if snapshots.get(state, rp.id).files == rp.files:
                return {"restore_point": rp.id, "already_present": True, "path": str(dst)}
        except (RestorePointError, UnknownName):
            pass
        rp.id = new_id()  # e.g. a clone exported as dumps, imported beside the original
        dst = rp_dir(state, rp.id)
    fsutil.require_space(state.root, rp.bytes, f"the import of {rp.id}")
    state.private_dir("restore-points")
    tmp = dst.with_name(f".{rp.id}.importing")
    command = f"snapshot import {src}"
    with guard(state, rp.env, command, shared=True):
        owner = cast("Environment", JournalOwner(state, rp.env))  # the journal needs only these two
        ctx = run_or_undo(owner, IMPORT_KIND, _import_steps(state, rp, Path(src), tmp, dst), command=command,
                          restore_point=rp.id, data={"rp": rp.id, "tmp": str(tmp), READ_ONLY: True})
        end_op(ctx, "succeeded")
    return {"restore_point": rp.id, "original_id": original, "path": str(dst), "env": rp.env, "strategy": rp.strategy,
            "versions": rp.versions, "seconds": round(time.monotonic() - t0, 3)}


@dataclass
class JournalOwner:
    """What the journal of an operation needs of its environment: the state dir and the name (an
    import may bring the restore point of an environment this state dir has never had)."""
    state: StateDir
    name: str


def _import_steps(state: StateDir, rp: RestorePoint, src: Path, tmp: Path, dst: Path) -> list[Step]:
    def copy(ctx: Ctx) -> dict[str, Any]:
        state.remove(tmp, ignore_errors=True)  # a copy an earlier, killed import left
        fsutil.copy_tree(src, tmp)
        return {"tmp": str(tmp)}

    def uncopy(ctx: Ctx) -> dict[str, Any]:
        state.remove(tmp, ignore_errors=True)
        return {"removed": str(tmp)}

    def verify(ctx: Ctx) -> dict[str, Any]:
        _require_checksums(tmp, rp.files, f"copy of {rp.id}", fix="check the disk and import again")
        return {"files": len(rp.files)}

    def commit(ctx: Ctx) -> dict[str, Any]:
        (tmp / "SHA256SUMS").unlink(missing_ok=True)
        tmp.rename(dst)
        rp.imported_from = str(src.resolve())
        save(state, rp)
        return {"restore_point": rp.id}

    return [Step("copy", copy, uncopy), Step("verify", verify), Step("commit", commit)]


def _copy_secrets(state: StateDir, m: Manifest, src_env: str, dst_env: str) -> list[str]:
    """Generated secrets of the source environment (keys that decrypt its data) for the new one."""
    copied = []
    for name in m.secrets:
        src = state.secrets_dir(src_env) / name
        dst = state.private_dir("secrets", dst_env) / name
        if src.is_file() and not dst.exists():
            shutil.copy2(src, dst)
            copied.append(name)
    return copied


def restore_steps(env: Environment, rp: RestorePoint, src: Path) -> list[Step]:
    """The journaled steps of ``env restore``; the first one's inverse removes the whole new environment
    (what a failure or an interrupted run leaves is discarded, then ``env restore`` runs again)."""
    def discard(ctx: Ctx) -> dict[str, Any]:
        return _discard(env)

    # the strategy's own actions (fs: the cluster copied into place, then up; dump: an empty
    # environment, each dump restored, the data dirs placed); the first one's inverse discards it all
    actions = snapshots.get_strategy(rp.strategy).rebuild_steps(env, rp, src)
    steps = [Step(label, lambda ctx, fn=fn: fn(), discard if i == 0 else None)
             for i, (label, fn) in enumerate(actions)]
    return [*steps, Step("verify", lambda ctx: rollback.smoke(env))]


def _discard(env: Environment) -> dict[str, Any]:
    env.destroy()  # processes, cluster, data dirs, secrets; the record goes with the env dir
    return {"removed": env.name}


def restore_env(m: Manifest, state: StateDir, name: str, rp_id: str, *, port_base: int | None = None,
                command: str = "env restore") -> dict[str, Any]:
    """Build a fresh environment ``name`` from restore point ``rp_id`` and verify it.

    A journaled operation (``history NAME`` shows its steps): a failed step removes the new
    environment again; an interrupted one (kill -9, power loss) is removed by ``upgrade-infra resume NAME``."""
    t0 = time.monotonic()
    rp = snapshots.get(state, rp_id)
    st = snapshots.get_strategy(rp.strategy)
    if not st.portable:
        raise BadInput(f"restore point {rp_id} is a {rp.strategy} restore point: its databases live inside "
                       f"{rp.env}'s cluster", fix=f"export it (`snapshot export {rp_id} DIR`), import the export, "
                                                  "then restore from the imported id")
    bad = verify_files(rp_dir(state, rp.id), rp.files)
    if bad:
        raise RestorePointError(f"restore point {rp_id} is damaged: {'; '.join(bad[:3])}",
                                fix="import another copy of the export")
    if state.load_record(name) is not None:
        raise BadInput(f"environment {name!r} already exists", fix="choose another name, or bring that one down "
                                                                     "and remove it first")
    state.ensure()
    spec = m.environments.get(name)
    kind = spec.backend if spec else "local"
    # where it goes is the backend's business (local: a port block); `--port-base` is asked of it
    placed = backend(kind, name).new_backend_state(m, state, name, kind="production",
                                                   requested={"port_base": port_base} if port_base else None)
    rec = EnvRecord(name=name, kind="production", backend=kind, backend_state=placed, versions=dict(rp.versions),
                    created_at=time.time(), seeded=True)
    env = open_environment(m, state, name, rec, readiness_check=readiness_check)
    with guard(state, name, command):
        env.save()  # first: `resume NAME` finds the environment whatever moment the process dies
        secrets = _copy_secrets(state, m, rp.env, name)
        steps = restore_steps(env, rp, rp_dir(state, rp.id))
        # a failed step, or Ctrl-C: the half-built environment goes
        ctx = run_or_undo(env, RESTORE_KIND, steps, command=command, restore_point=rp.id,
                          to_versions=dict(rp.versions),
                          data={"rp": rp.id, "strategy": rp.strategy, "placement": env.placement(),
                                "secrets_copied": secrets})
        smoke = ctx.results["verify"]
        end_op(ctx, "succeeded", passed=smoke["passed"])
    return {"environment": name, **env.placement(), "restore_point": rp.id, "versions": rp.versions,
            "secrets_copied": secrets, "op": ctx.op,
            "steps": [{k: x[k] for k in ("step", "start_s", "duration_s", "status")} for x in ctx.timeline],
            "verified": smoke["passed"], "smoke": smoke, "total_s": round(time.monotonic() - t0, 3)}


# -- recovery (``upgrade-infra resume ENV`` after a kill) ---------------------------------------------
def _recovery(kind: str, *, complete_after: str | None, complete: str = "",
              cleanup: Callable[[Environment, Ctx, OpSummary], dict[str, Any]], error: str, action: str) -> None:
    """Register how an interrupted operation of ``kind`` is recovered: when its step ``complete_after``
    ran it was complete and only its journal is closed (saying ``complete``); otherwise ``cleanup``
    removes what it left (what it returns goes into the answer) and the journal closes as recovered with
    ``error``, the answer saying ``action``. ``complete`` and ``action`` are formatted with the journal's
    data and ``name``, the environment's."""
    def recover(env: Environment, inc: OpSummary, command: str, *, prefer: str = "resume") -> dict[str, Any]:
        ctx = resume_ctx(env, inc)
        words = {**inc.data, "name": env.name}
        if complete_after is not None and complete_after in ctx.results:
            end_op(ctx, "succeeded", error=None)
            return {"action": complete.format(**words)}
        extra = cleanup(env, ctx, inc)
        end_op(ctx, "recovered", error=error)
        return {"action": action.format(**words), **extra}

    register_recovery(kind)(recover)


def _remove_partial_export(env: Environment, ctx: Ctx, inc: OpSummary) -> dict[str, Any]:
    if "prepare" in ctx.results:  # made by the export (never a directory that was there before)
        shutil.rmtree(inc.data["path"], ignore_errors=True)
    return {}


def _remove_partial_import(env: Environment, ctx: Ctx, inc: OpSummary) -> dict[str, Any]:
    env.state.remove(Path(inc.data["tmp"]), ignore_errors=True)
    return {}


def _remove_half_built(env: Environment, ctx: Ctx, inc: OpSummary) -> dict[str, Any]:
    try:
        steps = restore_steps(env, snapshots.get(env.state, inc.data["rp"]), rp_dir(env.state, inc.data["rp"]))
    except (RestorePointError, UnknownName):  # the restore point went since: its steps do not matter
        steps = []
    undone = undo_steps(ctx, steps, [s.name for s in inc.steps])
    if not undone:  # killed before its first step began
        undone = [{"step": "(none)", **_discard(env)}]
    return {"undone": undone}


# an export that was killed: its partial directory is removed (a sealed one is kept)
_recovery(EXPORT_KIND, complete_after="seal", complete="the export {path} was complete",
          cleanup=_remove_partial_export, error="interrupted; the partial export was removed",
          action="removed the partial export {path}: export again")
# an import that was killed: the temporary copy is removed (a committed one is kept)
_recovery(IMPORT_KIND, complete_after="commit", complete="restore point {rp} was imported",
          cleanup=_remove_partial_import, error="interrupted; the partial copy was removed",
          action="removed the partial copy of the import: import again")
# an `env restore` that was killed: the half-built environment is removed (run it again)
_recovery(RESTORE_KIND, complete_after=None, cleanup=_remove_half_built,
          error="interrupted; the half-built environment was removed",
          action="removed the half-built {name}: run `upgrade-infra env restore {name} --from {rp}` again")
