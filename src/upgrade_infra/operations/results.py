"""Results of upgrade, rollback and resume (see :mod:`upgrade_infra.core.results`).

``to_dict()`` of each is the JSON document ``upgrade-infra --json upgrade|rollback|resume`` prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from upgrade_infra.core.results import Result, hidden, key, optional, plural, secs, versions_text


@dataclass
class QuarantineSummary(Result):
    """Where a rollback put the failed state, and the rows written after the upgrade (per table)."""

    op: str
    rows_new_total: int | None = None
    tables: list[dict[str, Any]] = field(default_factory=list)
    where: str | None = None

    @property
    def verdict(self) -> str:
        return f"{plural(self.rows_new_total, 'row')} quarantined in {self.where or self.op}"


@dataclass
class RollbackResult(Result):
    op: str
    environment: str
    restore_point: str
    strategy: str
    versions: dict[str, str]
    from_versions: dict[str, str] | None
    auto: bool
    steps: list[dict[str, Any]]
    total_s: float
    wall_s: float
    database_step_s: float | None
    budget_s: float
    over_budget: bool
    verified: bool
    staging_path: str | None
    quarantine: QuarantineSummary
    notifications: list[dict[str, Any]] | None = optional()

    @property
    def ok(self) -> bool:
        return self.verified and not self.over_budget

    @property
    def resumed_steps(self) -> int:
        """Steps done before a ``resume`` finished this rollback."""
        return sum(1 for t in self.steps if t.get("before_resume"))

    @property
    def verdict(self) -> str:
        budget = f", over the {self.budget_s:g} s budget" if self.over_budget else ""
        return (f"rolled back {self.environment} to {self.restore_point} in {secs(self.total_s)}{budget}, "
                f"{'verified' if self.verified else 'NOT verified'}, "
                f"{plural(self.quarantine.rows_new_total, 'row')} quarantined")


@dataclass
class UpgradeResult(Result):
    op: str
    environment: str
    outcome: str  # succeeded | rolled-back
    restore_point: str
    from_versions: dict[str, str]
    to_versions: dict[str, str]
    versions: dict[str, str]
    steps: list[dict[str, Any]]
    downtime_s: float | None
    total_s: float
    error: str | None = optional()
    failed_step: str | None = optional()
    rollback: RollbackResult | None = optional()
    notifications: list[dict[str, Any]] = field(default_factory=list)
    drill: dict[str, Any] | None = optional()  # the rollback drill's plan (docsite.drill)

    @property
    def ok(self) -> bool:
        return self.outcome == "succeeded"

    @property
    def verdict(self) -> str:
        if self.ok:
            return (f"upgraded {self.environment} to {versions_text(self.to_versions)} in {secs(self.total_s)} "
                    f"(downtime {secs(self.downtime_s)}), restore point {self.restore_point}")
        rb = f": {self.rollback.verdict}" if self.rollback else ""
        return f"upgrade of {self.environment} failed at {self.failed_step} ({self.error}){rb}"


@dataclass
class Recovered(Result):
    """One interrupted operation ``resume`` finished: ``action`` says how."""

    op: str
    kind: str
    action: str | None = optional()
    result: RollbackResult | None = optional()
    undone: list[dict[str, Any]] | None = optional()
    extra: dict[str, Any] = hidden(default_factory=dict)  # what a registered recovery handler adds

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), **self.extra}  # extra is not a key: its entries are

    @property
    def verdict(self) -> str:
        return f"{self.kind} {self.op}: {self.action}"


@dataclass
class RecoveryResult(Result):
    """``resume`` (and a ``rollback`` that found an interrupted operation): what was finished."""

    environment: str
    recovered: list[Recovered]
    versions: dict[str, str]

    @property
    def verdict(self) -> str:
        if not self.recovered:
            return f"nothing to resume in {self.environment}"
        return "; ".join(r.verdict for r in self.recovered) + f"; versions now {versions_text(self.versions)}"


@dataclass
class EnvDestroyed(Result):
    """``env destroy``: what went (restore points, quarantines) and whether an adopted project's volumes stayed."""

    environment: str = key("destroyed")
    restore_points_deleted: list[str] = field(default_factory=list)
    quarantines_deleted: list[str] = field(default_factory=list)
    volumes_kept: bool = False
    total_s: float = 0.0

    @property
    def verdict(self) -> str:
        kept = " (its volumes were kept)" if self.volumes_kept else ""
        return (f"{self.environment} destroyed in {secs(self.total_s)} ({len(self.restore_points_deleted)} restore "
                f"point(s) deleted){kept}")


__all__ = ["EnvDestroyed", "QuarantineSummary", "Recovered", "RecoveryResult", "RollbackResult", "UpgradeResult"]
