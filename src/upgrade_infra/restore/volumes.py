"""Service data in engine volumes (the backend's :class:`EngineVolumes`) in restore points.

Capture: each live volume is copied into a restore-point volume ``uirp-<id>-<volume>`` (labelled with the
restore point) by a short-lived helper container; the restore point's metadata records, per volume, the
live name, the copy's name and its size. Verify: every recorded copy still exists. Rollback: the live
volume's contents go into a quarantine volume ``uiq-<op>-<volume>`` (kept, like the quarantined data
dirs), then the restore point's copy is copied back into the live volume, whose name never changes (a
user's volume stays the user's); the restore point's copy stays intact, so no spare is needed. The
progress of a rollback is kept in ``<quarantine>/volumes.json``, so a ``resume`` never copies a
half-restored volume into the quarantine.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upgrade_infra.backends.interface import EngineVolumes
from upgrade_infra.core.state import atomic_write_json

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment
    from upgrade_infra.restore.meta import RestorePoint

RP_LABEL = "org.upgrade-infra.restore-point"
Q_LABEL = "org.upgrade-infra.quarantine"


def engine_volumes(env: Environment) -> EngineVolumes | None:
    return env.capability(EngineVolumes) if env.has(EngineVolumes) else None


def _safe(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", name)


def rp_volume(rp_id: str, key: str) -> str:
    return f"uirp-{_safe(rp_id.removeprefix('rp-'))}-{_safe(key)}"


def q_volume(op: str, key: str) -> str:
    return f"uiq-{_safe(op)}-{_safe(key)}"


def capture(env: Environment, rp: RestorePoint) -> int:
    """Copy every live volume into a restore-point volume; recorded in ``rp.volumes``. Bytes copied."""
    cap = engine_volumes(env)
    if cap is None:
        return 0
    total = 0
    for key, live in cap.live().items():
        target = rp_volume(rp.id, key)
        n = cap.snapshot(live, target, {RP_LABEL: rp.id, "org.upgrade-infra.env": env.name})
        rp.volumes[key] = {"live": live, "volume": target, "bytes": n}
        total += n
    return total


def verify(env: Environment, rp: RestorePoint) -> list[str]:
    if not rp.volumes:
        return []
    cap = engine_volumes(env)
    if cap is None:
        return [f"restore point {rp.id} holds engine volumes but {env.name}'s backend has none"]
    return [f"missing volume copy {v['volume']} (of {v['live']})" for v in rp.volumes.values()
            if not cap.exists(v["volume"])]


def drop(env: Environment, rp_id: str) -> None:
    """Remove a restore point's volumes (complete or half-made: found by label)."""
    cap = engine_volumes(env)
    if cap is None:
        return
    for name in cap.labelled(RP_LABEL, rp_id):
        cap.remove(name)


def restore(env: Environment, rp: RestorePoint, op: str, qdir: Path) -> dict[str, str]:
    """Live volumes into quarantine volumes, the restore point's copies back into the live volumes (the
    services are stopped). Idempotent across a resume. Returns volume -> its quarantine volume."""
    if not rp.volumes:
        return {}
    cap = engine_volumes(env)
    assert cap is not None  # verified before the rollback began
    progress_file = qdir / "volumes.json"
    done: dict[str, str] = json.loads(progress_file.read_text()) if progress_file.exists() else {}
    qdir.mkdir(parents=True, exist_ok=True, mode=0o700)
    out: dict[str, str] = {}
    for key, info in rp.volumes.items():
        q = q_volume(op, key)
        out[key] = q
        if done.get(key) == "restored":
            continue
        if done.get(key) != "quarantined":
            cap.remove(q)  # a half-made copy of an interrupted run
            cap.snapshot(info["live"], q, {Q_LABEL: op, "org.upgrade-infra.env": env.name})
            done[key] = "quarantined"
            atomic_write_json(progress_file, done, mode=0o600)
        cap.copy_back(info["volume"], info["live"])
        done[key] = "restored"
        atomic_write_json(progress_file, done, mode=0o600)
    return out


def summary(rp: RestorePoint) -> dict[str, Any]:
    return {k: {"live": v["live"], "volume": v["volume"], "bytes": v["bytes"]} for k, v in rp.volumes.items()}
