"""The release table: version -> alembic head per service + code feature flags.

Both services ship the same version strings.  Every release knows exactly one
head revision per service; the code uses the ``Features`` flags to decide
which columns it reads and writes.  The graph per service is::

    r100 (1.0.0) -> r110 (1.1.0) -> r120 (1.2.0)
    r100 -> r110_lossy (1.1.0-lossy)
    r100 -> r110_locking (1.1.0-locking)
"""
from __future__ import annotations

from dataclasses import dataclass, field

SERVICES = ("assistant", "automations")


@dataclass(frozen=True)
class Features:
    # users.first_name/last_name instead of users.full_name
    split_names: bool = False
    # memory_tags table and "tags" on memory POST
    memory_tags: bool = False
    # executions.duration_ms is filled by the code
    duration_ms: bool = False
    # Column the assistant reads memory text from when composing a reply.
    # 1.2.0 ships a (deliberate) bug: it reads "body", which does not exist.
    recall_column: str = "content"


@dataclass(frozen=True)
class Release:
    version: str
    heads: dict[str, str]
    features: Features = field(default_factory=Features)
    description: str = ""

    def head(self, service: str) -> str:
        return self.heads[service]


def _same_head(revision: str) -> dict[str, str]:
    return {service: revision for service in SERVICES}


_V110 = Features(split_names=True, memory_tags=True, duration_ms=True)

RELEASES: dict[str, Release] = {
    r.version: r
    for r in (
        Release("1.0.0", _same_head("r100"), Features(), "initial schema"),
        Release("1.1.0", _same_head("r110"), _V110, "split user names, memory tags, durations"),
        Release(
            "1.2.0",
            _same_head("r120"),
            Features(split_names=True, memory_tags=True, duration_ms=True, recall_column="body"),
            "harmless column; BUG: posting a message fails (rollback drills)",
        ),
        Release("1.1.0-lossy", _same_head("r110_lossy"), _V110, "1.1.0 that loses agents.system_prompt"),
        Release("1.1.0-locking", _same_head("r110_locking"), _V110, "1.1.0 that holds ACCESS EXCLUSIVE on messages"),
    )
}


class UnknownRelease(ValueError):
    pass


def get_release(version: str) -> Release:
    try:
        return RELEASES[version]
    except KeyError:
        known = ", ".join(RELEASES)
        raise UnknownRelease(f"unknown release {version!r} (known: {known})") from None


def release_for_revision(service: str, revision: str | None) -> str | None:
    """The release whose head for ``service`` is ``revision`` (or None)."""
    for release in RELEASES.values():
        if release.heads[service] == revision:
            return release.version
    return None
