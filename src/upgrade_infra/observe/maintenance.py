"""Routine care across every environment of a state dir: an overview, restore-point and quarantine
retention, expired staging environments. Each function is one runbook cell."""

from __future__ import annotations

from typing import Any

from upgrade_infra.operations.session import Session
from upgrade_infra.restore.points import list_points, prune  # points first: it completes restore.ops
from upgrade_infra.staging import lifecycle as staging
from upgrade_infra.validation.engine import prune_reports


def overview(s: Session) -> list[dict[str, Any]]:
    """One row per environment: kind, health, versions, database MB, restore points."""
    rows = []
    for env in s.environments():
        if not s.state.load_record(env.name):
            continue
        st = env.status()
        rows.append({"environment": env.name, "kind": env.kind, "healthy": st.healthy,
                     "versions": ", ".join(f"{k}={v}" for k, v in env.record.versions.items()),
                     "database MB": round(sum(st.databases.values()) / 1e6, 1),
                     "restore points": len(list_points(s.state, env.name))})
    return rows


def prune_all(s: Session, *, dry_run: bool = False) -> list[dict[str, Any]]:
    """Apply ``policies.retention`` to every environment's restore points, quarantines and
    validation report dirs."""
    out = []
    for env in s.environments():
        if not s.state.load_record(env.name):
            continue
        res = prune(env, dry_run=dry_run, command="maintenance prune")
        reports = prune_reports(s.state, env.name, s.manifest.policies.retention, dry_run=dry_run)
        out.append({"environment": env.name, "deleted": len(res["deleted"]),
                    "incomplete deleted": len(res["incomplete_deleted"]),
                    "quarantines deleted": len(res["quarantines_deleted"]),
                    "reports deleted": len(reports), "kept": len(res["kept"] or [])})
    return out


def collect_garbage(s: Session, *, dry_run: bool = False) -> dict[str, Any]:
    return staging.gc(s, dry_run=dry_run)
