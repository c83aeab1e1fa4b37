"""Typed exceptions, one module. The CLI maps ``exit_code`` to the process exit status.

Exit codes: 0 ok, 1 a check failed, 2 bad input or usage, 3 an operation failed.
Every error carries a one-line ``message`` and, where known, the ``fix``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from upgrade_infra.core.redact import scrub, scrub_obj

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_OPERATION_FAILED = 3


class UpgradeInfraError(Exception):
    exit_code = EXIT_OPERATION_FAILED

    def __init__(self, message: str, *, fix: str | None = None, **details: Any) -> None:
        message = scrub(message)  # e.g. a failing service's last log lines, printing a token
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.details = details

    def one_line(self) -> str:
        return scrub(f"{self.message} (fix: {self.fix})" if self.fix else self.message)

    def to_dict(self) -> dict[str, Any]:
        return scrub_obj({"error": type(self).__name__, "message": self.message, "fix": self.fix,
                          "exit_code": self.exit_code, **{k: _jsonable(v) for k, v in self.details.items()}})


def _jsonable(v: Any) -> Any:
    return v if isinstance(v, str | int | float | bool | type(None) | list | dict) else str(v)


# -- bad input (exit 2) -------------------------------------------------------------------------
class BadInput(UpgradeInfraError):
    exit_code = EXIT_BAD_INPUT


@dataclass
class ManifestIssue:
    file: str
    line: int | None
    field: str
    problem: str
    fix: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        text = f"{where}: {self.field}: {self.problem}"
        return f"{text} (fix: {self.fix})" if self.fix else text


class ManifestError(BadInput):
    def __init__(self, issues: list[ManifestIssue]) -> None:
        self.issues = issues
        first = issues[0]
        more = f" (+{len(issues) - 1} more)" if len(issues) > 1 else ""
        super().__init__(str(first) + more, fix=None, file=first.file, line=first.line,
                         field=first.field, issues=[str(i) for i in issues])


class UnknownName(BadInput):
    """An unknown service, version, environment, restore point, check kind..."""


class PortInUse(BadInput):
    pass


class PostgresNotFound(BadInput):
    pass


class StateDirError(BadInput):
    pass


class RefusedToTouchProduction(BadInput):
    """Staging must never write to production; also raised for commands that need a staging env."""


# -- operations (exit 3) ------------------------------------------------------------------------
class OperationFailed(UpgradeInfraError):
    exit_code = EXIT_OPERATION_FAILED


class CommandFailed(OperationFailed):
    pass


class ServiceNotReady(OperationFailed):
    pass


class ServiceStillRunning(OperationFailed):
    """A stopped service's processes or ports did not go away within the stop timeout."""


class ServiceStartBlocked(OperationFailed):
    """An operation that already changed the environment cannot start a service (its port is held)."""


class PostgresError(OperationFailed):
    pass


class LockHeld(OperationFailed):
    pass


class BudgetExceeded(OperationFailed):
    pass


class RestorePointError(OperationFailed):
    pass


class DiskFull(OperationFailed):
    pass


class InjectedFault(OperationFailed):
    """Raised (or the process killed) at a step named by UPGRADE_INFRA_FAULT, for fault-injection tests."""


# -- checks (exit 1) ----------------------------------------------------------------------------
@dataclass
class CheckFailure:
    check: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


class CheckFailed(UpgradeInfraError):
    exit_code = EXIT_CHECK_FAILED
