"""The result of ``snapshot create`` (see :mod:`upgrade_infra.core.results`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from upgrade_infra.core.results import Result, secs
from upgrade_infra.restore.meta import RestorePoint


@dataclass
class RestorePointCreated(Result):
    """A restore point taken as an operation; ``to_dict()`` is ``snapshot create --json``."""

    restore_point: RestorePoint  # the document carries its summary()
    op: str
    strategy_why: str | None
    timeline: list[dict[str, Any]]
    downtime_s: float | None
    capture_s: float

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "restore_point": self.restore_point.summary()}

    @property
    def verdict(self) -> str:
        rp = self.restore_point
        down = f", service downtime {secs(self.downtime_s)}" if self.downtime_s is not None else ""
        return (f"restore point {rp.id} of {rp.env} ({rp.strategy}, {round(rp.bytes / 1e6, 1)} MB) "
                f"in {secs(self.capture_s)}{down}")


__all__ = ["RestorePointCreated"]
