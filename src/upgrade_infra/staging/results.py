"""Results of ``stage create|sync|reset|destroy`` (see :mod:`upgrade_infra.core.results`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from upgrade_infra.core.results import Result, hidden, key, secs


@dataclass
class StagingReady(Result):
    """A staging env created or synced: copied, masked, leak-checked, started and healthy.

    ``to_dict()`` is ``stage create|sync --json``: its first key says which (``created``/``synced``:
    the environment's name), then the figures, then the facts kept in ``staging.json``."""

    action: str = hidden()  # created | synced
    environment: str = hidden()
    source: str = ""
    strategy: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    total_s: float = 0.0
    ready_s: float = 0.0
    mb: float = 0.0
    copy_s: float = 0.0
    mb_per_s: float | None = None
    timeline: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = hidden(default_factory=dict)  # what staging.json records (status, masking, …)

    def to_dict(self) -> dict[str, Any]:
        return {self.action: self.environment, "source": self.source, "strategy": self.strategy,
                "versions": self.versions, "ports": self.ports, "total_s": self.total_s, "ready_s": self.ready_s,
                "mb": self.mb, "copy_s": self.copy_s, "mb_per_s": self.mb_per_s, "timeline": self.timeline,
                **self.meta}

    # the facts of staging.json, by name
    @property
    def status(self) -> str | None:
        return self.meta.get("status")

    @property
    def mask(self) -> bool | None:
        return self.meta.get("mask")

    @property
    def op(self) -> str | None:
        return self.meta.get("op")

    @property
    def masking(self) -> dict[str, Any] | None:
        return self.meta.get("masking")

    @property
    def leak_check(self) -> dict[str, Any] | None:
        return self.meta.get("leak_check")

    @property
    def restore_point(self) -> str | None:
        return self.meta.get("restore_point")

    @property
    def ok(self) -> bool:
        return self.status == "ready" and bool((self.leak_check or {}).get("ok", True))

    @property
    def verdict(self) -> str:
        leak = self.leak_check
        masked = "" if leak is None else (", no production value survives" if leak.get("ok") else ", LEAK")
        return (f"staging {self.environment} {self.action} from {self.source}: ready in {secs(self.ready_s)} "
                f"({self.strategy}, {self.mb} MB at {self.mb_per_s} MB/s){masked}")


@dataclass
class StagingReset(Result):
    environment: str = key("reset")
    restore_point: str = ""
    versions: dict[str, str] | None = None
    ready_s: float = 0.0
    wall_s: float = 0.0
    op: str = ""
    steps: list[dict[str, Any]] | None = None

    @property
    def verdict(self) -> str:
        return f"{self.environment} reset to {self.restore_point}: ready in {secs(self.ready_s)}"


@dataclass
class StagingDestroyed(Result):
    environment: str = key("destroyed")
    restore_points_deleted: list[str] | None = None
    total_s: float = 0.0

    @property
    def verdict(self) -> str:
        n = len(self.restore_points_deleted or [])
        return f"{self.environment} destroyed in {secs(self.total_s)} ({n} restore point(s) deleted)"


__all__ = ["StagingDestroyed", "StagingReady", "StagingReset"]
