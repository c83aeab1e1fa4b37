"""The end-to-end acceptance run (runbook ``e2e-cos``): each function is one step of the drill on a
*disposable* production-like environment, returning the figures the CoS report reads.

Nothing here touches an environment that is not declared ``disposable: true`` in the manifest.
"""

from __future__ import annotations

from typing import Any

from upgrade_infra.core.errors import RefusedToTouchProduction
from upgrade_infra.migration import rehearsal
from upgrade_infra.operations import upgrade
from upgrade_infra.operations.session import Session
from upgrade_infra.staging import info as staging_info
from upgrade_infra.staging import lifecycle as staging
from upgrade_infra.validation import engine as validation

FAST_REHEARSAL = ("lint", "downgrade", "validate", "compatibility")  # hazard fixtures: detection only


def provision(s: Session, name: str, *, seed_mb: float | None = None) -> dict[str, Any]:
    """Destroy (if present) and re-create the disposable environment ``name``, seeded."""
    spec = s.manifest.environments.get(name)
    if spec is None or not spec.disposable:
        raise RefusedToTouchProduction(
            f"environment {name!r} is not declared disposable; the acceptance run re-creates it from scratch",
            fix=f"declare environments.{name}.disposable: true (never for production)")
    for other in [n for n in s.state.env_names() if (r := s.state.load_record(n)) and r.source == name]:
        staging.destroy(s, other)
    if name in s.state.env_names():
        s.env(name).destroy()
    up = s.env(name).up(seed_mb=seed_mb)
    return {"environment": name, "up_s": up.total_s, "seed": up.seed, "healthy": s.env(name).status().healthy}


def stage(s: Session, name: str, source: str) -> dict[str, Any]:
    created = staging.create(s, name, source=source)
    parity = staging_info.parity(s.env(source), s.env(name))
    leak = created.leak_check or {}
    return {"ready_s": created.ready_s, "strategy": created.strategy, "mb": created.mb,
            "masking_leaks": sum(c["surviving"] for c in leak.get("columns", [])),
            "masked_columns": len(leak.get("columns", [])),
            "leak_check_ok": bool(leak.get("ok")), "parity": all(r["match"] for r in parity),
            "tables": len(parity)}


def validate(s: Session, name: str) -> tuple[validation.ValidationReport, dict[str, Any]]:
    report = validation.validate(s.env(name))
    return report, {"passed": report.counts()["passed"], "total": len(report.results),
                    "duration_s": round(report.duration_s, 2), "failed": [r.name for r in report.failures()]}


def validate_release(s: Session, name: str, version: str) -> dict[str, Any]:
    """Re-sync staging on ``version`` and validate it: a broken release must fail checks."""
    staging.sync_env(s, name, versions={svc: version for svc in s.manifest.services})
    report = validation.validate(s.env(name))
    return {"version": version, "failures": len(report.failures()),
            "failed": [f"{r.name}: {r.message}" for r in report.failures()]}


def rehearse(s: Session, name: str, version: str, *, fast: bool = False) -> dict[str, Any]:
    rep = rehearsal.rehearse(s, name, {svc: version for svc in s.manifest.services},
                             skip=FAST_REHEARSAL if fast else ())
    return {"version": version, "passed": rep.passed, "failures": rep.failures, "warnings": rep.warnings,
            "duration_s": rep.migration_s, "report": rep.report_json}


def upgrade_to(s: Session, name: str, version: str) -> dict[str, Any]:
    res = upgrade.upgrade(s.env(name), {svc: version for svc in s.manifest.services},
                          command=f"e2e-cos upgrade {name} to {version}")
    out = {"version": version, "outcome": res.outcome, "total_s": res.total_s,
           "failed_step": res.failed_step, "steps": res.steps}
    rb = res.rollback
    if rb:
        out["rollback"] = {"total_s": rb.total_s, "budget_s": rb.budget_s, "verified": rb.verified,
                           "database_step_s": rb.database_step_s,
                           "quarantined_rows": rb.quarantine.rows_new_total, "steps": rb.steps}
    return out


def teardown(s: Session, staging_name: str, env_name: str) -> dict[str, Any]:
    gone = staging.discard(s, staging_name)
    down = s.env(env_name).down()
    return {"staging_destroyed": gone is not None, "environment_stopped": down.environment}
