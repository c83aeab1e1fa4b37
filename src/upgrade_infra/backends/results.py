"""Results of ``env up`` and ``env down`` (see :mod:`upgrade_infra.core.results`); every backend
returns these from ``Environment.up``/``down``, with the same JSON keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from upgrade_infra.core.results import Result, optional, secs


@dataclass
class EnvUp(Result):
    environment: str
    created: bool  # the database cluster was created by this call
    database_s: float
    services_s: dict[str, float]
    total_s: float
    seed: dict[str, Any] | None  # what seeding added, when this call seeded
    status: dict[str, Any] | None = optional()  # the CLI adds the environment's status after it
    project: str | None = optional()  # container backends: the Compose project the environment runs as

    @property
    def verdict(self) -> str:
        seeded = (f", seeded {self.seed['bytes_added'] / 1e6:.0f} MB at {self.seed['mb_per_s']} MB/s"
                  if self.seed and "bytes_added" in self.seed else "")
        return f"{self.environment} up in {secs(self.total_s)}" + (" (created)" if self.created else "") + seeded


@dataclass
class EnvDown(Result):
    environment: str
    services: Any  # what stop_services reported, per service
    postgres_stop_s: float  # compose: the one `compose down` that removes the containers, PostgreSQL's too
    total_s: float
    project: str | None = optional()  # container backends: the Compose project

    @property
    def verdict(self) -> str:
        return f"{self.environment} down in {secs(self.total_s)}"


__all__ = ["EnvDown", "EnvUp"]
