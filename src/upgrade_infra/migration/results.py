"""The result of ``migrate test`` (see :mod:`upgrade_infra.core.results`).

The rehearsal's report is a JSON document written beside the run (``report.write``) and read back by
``report.render``; :class:`MigrationTestResult` carries it whole (``to_dict()`` is that document, and
``migrate test --json``) and gives its facts as attributes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from upgrade_infra.core.results import Result, hidden, secs, versions_text


@dataclass
class MigrationTestResult(Result):
    environment: str
    from_versions: dict[str, str]
    to_versions: dict[str, str]
    passed: bool
    failures: list[str]
    warnings: list[str]
    steps: list[dict[str, Any]]
    duration_total_s: float | None
    report_json: str | None = None
    report_md: str | None = None
    report: dict[str, Any] = hidden(default_factory=dict)  # the whole document

    @classmethod
    def from_report(cls, rep: dict[str, Any]) -> MigrationTestResult:
        v = rep.get("verdict") or {}
        return cls(environment=rep.get("environment", ""), from_versions=rep.get("from_versions") or {},
                   to_versions=rep.get("to_versions") or {}, passed=bool(v.get("passed")),
                   failures=list(v.get("failures") or []), warnings=list(v.get("warnings") or []),
                   steps=rep.get("steps") or [], duration_total_s=rep.get("duration_total_s"),
                   report_json=rep.get("report_json"), report_md=rep.get("report_md"), report=rep)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.report)

    # sections of the report, by name
    @property
    def migration(self) -> dict[str, Any]:
        return self.report.get("migration") or {}

    @property
    def migration_s(self) -> float | None:
        return self.migration.get("duration_s")

    @property
    def locks(self) -> dict[str, Any]:
        return self.report.get("locks") or {}

    @property
    def integrity(self) -> dict[str, Any] | None:
        return self.report.get("integrity")

    @property
    def reversibility(self) -> dict[str, Any]:
        return self.report.get("reversibility") or {}

    @property
    def restore_exact(self) -> bool | None:
        """The restore-point rollback gave back the before state exactly (None: not run)."""
        return (self.reversibility.get("restore_point") or {}).get("exact")

    @property
    def compatibility(self) -> dict[str, Any] | None:
        return self.report.get("compatibility")

    @property
    def wal_bytes(self) -> int | None:
        return self.report.get("wal_bytes")

    @property
    def accept(self) -> dict[str, Any] | None:
        return self.report.get("accept")

    @property
    def ok(self) -> bool:
        return self.passed

    @property
    def verdict(self) -> str:
        head = (f"migration test on {self.environment} to {versions_text(self.to_versions)}: "
                f"{'PASS' if self.passed else 'FAIL'}, migration {secs(self.migration_s)}")
        if self.failures:
            return head + f"; {self.failures[0]}" + (f" (+{len(self.failures) - 1} more)" if len(self.failures) > 1 else "")
        return head + (f"; {len(self.warnings)} warning(s)" if self.warnings else "")


__all__ = ["MigrationTestResult"]
