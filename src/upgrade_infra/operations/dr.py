"""Disaster recovery: move restore points to and from another place, and build an environment
from one (the machine-lost case).

``export`` writes a self-contained directory ``DIR/<id>/`` (0700, files 0600): a ``clone`` restore
point is converted to ``pg_dump -Fd`` dumps on the way (its databases live inside the cluster);
``dump`` and ``fs`` ones are copied. Every file is checksummed in the metadata and listed in
``SHA256SUMS`` (``sha256sum -c SHA256SUMS`` works without this tool). ``import_`` verifies all of
it before and after copying into the state dir. ``restore_env`` creates a new environment on its
own place (local: a port block) from a portable restore point and verifies it with the smoke checks.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upgrade_infra.backends import open_environment
from upgrade_infra.backends.interface import PhysicalDataDir
from upgrade_infra.backends.registry import backend
from upgrade_infra.core import fsutil
from upgrade_infra.core.errors import BadInput, RestorePointError, UnknownName
from upgrade_infra.core.lock import guard
from upgrade_infra.core.state import EnvRecord, StateDir, atomic_write_json
from upgrade_infra.operations import rollback
from upgrade_infra.operations.session import readiness_check
from upgrade_infra.restore import datadirs
from upgrade_infra.restore import points as snapshots
from upgrade_infra.restore.dump import dump_db, restore_db
from upgrade_infra.restore.meta import (
    META,
    SPARE,
    RestorePoint,
    checksum_of,
    checksum_tree,
    new_id,
    private_files,
    rp_dir,
    save,
    verify_files,
)

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment
    from upgrade_infra.stack.manifest import Manifest


def _seal(rp: RestorePoint, d: Path) -> None:
    rp.checksum = rp.compute_checksum()
    atomic_write_json(d / META, rp.model_dump(), mode=0o600)
    lines = [f"{fsutil.sha256_file(d / rel)}  {rel}\n" for rel in [*sorted(rp.files), META]]
    (d / "SHA256SUMS").write_text("".join(lines))
    private_files(d)


def export(env: Environment, rp_id: str, dest: Path) -> dict[str, Any]:
    """Export restore point ``rp_id`` of ``env`` to ``dest/<id>/``, verified by checksum."""
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
    with guard(env.state, env.name, f"snapshot export {rp.id}", shared=True):  # read: no upgrade under it
        return _export(env, rp, src, out, t0)


def _export(env: Environment, rp: RestorePoint, src: Path, out: Path, t0: float) -> dict[str, Any]:
    rp_id = rp.id
    out.mkdir(parents=True, mode=0o700)
    try:
        new = rp.model_copy(deep=True)
        if snapshots.get_strategy(rp.strategy).portable:
            for entry in src.iterdir():
                if entry.name not in (META, SPARE, "SHA256SUMS"):
                    fsutil.copy_tree(entry, out / entry.name)
        else:
            new.strategy, new.converted_from, new.files, new.bytes = "dump", rp.strategy, {}, 0
            (out / "dump").mkdir(mode=0o700)
            with snapshots.get_strategy(rp.strategy).reference(env, rp) as conns:
                for db, conninfo in conns.items():
                    dump_db(env, conninfo, out / "dump" / db)
                    new.files.update(checksum_tree(out, f"dump/{db}"))
                    new.databases[db] = {"dump": f"dump/{db}", "owner": db}
            for rel in rp.data_dirs.values():
                fsutil.copy_tree(src / rel, out / rel)
                new.files.update(checksum_tree(out, rel))
            new.bytes = sum((out / f).stat().st_size for f in new.files)
        bad = verify_files(out, new.files)
        if bad:
            raise RestorePointError(f"export of {rp_id} does not match its checksums: {'; '.join(bad[:3])}",
                                    fix="check the destination disk and export again")
        _seal(new, out)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return {"restore_point": rp.id, "path": str(out), "strategy": new.strategy, "files": len(new.files),
            "mb": round(new.bytes / 1e6, 1), "seconds": round(time.monotonic() - t0, 3)}


def read_export(src: Path) -> RestorePoint:
    src = Path(src)
    meta = src / META
    if not meta.is_file():
        raise BadInput(f"{src} is not an exported restore point (no {META})",
                       fix="pass the directory `snapshot export` wrote (DIR/<id>)")
    import json

    from pydantic import ValidationError

    raw = json.loads(meta.read_text())
    try:
        rp = RestorePoint.model_validate(raw)
    except ValidationError as e:
        raise BadInput(f"{meta} is not a valid restore point: {e.errors()[0]['msg']}",
                       fix="use the directory `snapshot export` wrote, unmodified") from None
    if raw.get("checksum") != checksum_of(raw):
        raise RestorePointError(f"{meta}: metadata checksum mismatch", fix="the export is damaged; use another copy")
    bad = verify_files(src, rp.files)
    if bad:
        raise RestorePointError(f"export {src} is damaged: {'; '.join(bad[:3])}" + (" …" if len(bad) > 3 else ""),
                                fix="use another copy of the export", problems=bad)
    return rp


def import_(state: StateDir, src: Path) -> dict[str, Any]:
    """Copy an exported restore point into the state dir after verifying every checksum."""
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
    state.remove(tmp, ignore_errors=True)
    fsutil.copy_tree(Path(src), tmp)
    bad = verify_files(tmp, rp.files)
    if bad:
        state.remove(tmp, ignore_errors=True)
        raise RestorePointError(f"copy of {rp.id} does not match its checksums: {'; '.join(bad[:3])}",
                                fix="check the disk and import again")
    (tmp / "SHA256SUMS").unlink(missing_ok=True)
    tmp.rename(dst)
    rp.imported_from = str(Path(src).resolve())
    save(state, rp)
    return {"restore_point": rp.id, "original_id": original, "path": str(dst), "env": rp.env, "strategy": rp.strategy,
            "versions": rp.versions, "seconds": round(time.monotonic() - t0, 3)}


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


def restore_env(m: Manifest, state: StateDir, name: str, rp_id: str, *, port_base: int | None = None,
                command: str = "env restore") -> dict[str, Any]:
    """Build a fresh environment ``name`` from restore point ``rp_id`` and verify it."""
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
    steps: list[dict[str, Any]] = []

    def step(label: str, fn) -> Any:
        s = time.monotonic()
        out = fn()
        steps.append({"step": label, "start_s": round(s - t0, 3), "duration_s": round(time.monotonic() - s, 3),
                      "status": "ok"})
        return out

    with guard(state, name, command):
        env.save()
        secrets = _copy_secrets(state, m, rp.env, name)
        src = rp_dir(state, rp.id)
        if "pgdata" in next(iter(rp.databases.values()), {}):  # a physical data dir (fs)
            pg = env.capability(PhysicalDataDir)
            step("place_cluster", lambda: (pg.prepare(), fsutil.copy_tree(src / "pgdata", pg.path)))
            step("place_data_dirs", lambda: _place_dirs(env, rp, src))
            step("up", lambda: env.up(seed=False))
        else:
            step("up_empty", lambda: env.up(seed=False))
            step("stop_services", env.stop_services)
            for db, d in rp.databases.items():
                step(f"restore {db}", lambda db=db, d=d: restore_db(env, src / d["dump"], db, d.get("owner") or db))
            step("place_data_dirs", lambda: _place_dirs(env, rp, src))
            step("start_services", env.start_services)
        smoke = step("verify", lambda: rollback.smoke(env))
    return {"environment": name, **env.placement(), "restore_point": rp.id, "versions": rp.versions,
            "secrets_copied": secrets, "steps": steps, "verified": smoke["passed"], "smoke": smoke,
            "total_s": round(time.monotonic() - t0, 3)}


def _place_dirs(env: Environment, rp: RestorePoint, src: Path) -> None:
    for svc, rel in rp.data_dirs.items():
        cur = datadirs.live(env, svc)
        if cur.exists():
            env.state.remove(cur)
        fsutil.copy_tree(src / rel, cur)
