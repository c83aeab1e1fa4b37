"""Data sync strategies (a registry keyed by name): how a staging copy gets the source's data.

``dump``      online ``pg_dump -Fd -j`` into ``pg_restore -j``; the source stays up, read-only sessions;
              works across clusters and PostgreSQL majors.
``physical``  a file copy (reflink where the filesystem can) of the *stopped* source cluster; the
              fastest correct copy, used for a stopped source or a staging source, or when asked.
``cow``       a reflink copy of the source's last ``cow`` restore point (or a fresh one): O(1) in the
              data size where the state dir's filesystem has reflinks (XFS reflink=1, btrfs).

Each strategy returns a :class:`~upgrade_infra.staging.sync.base.Copy`: the new data sits beside the old
until ``commit()`` (``abort()`` leaves the target as it was), so masking runs before anything is
swapped in or started.
"""

from __future__ import annotations

from upgrade_infra.core.errors import BadInput, UnknownName
from upgrade_infra.staging.sync.base import Copy, Progress, SyncStrategy, no_progress

STRATEGIES: dict[str, type[SyncStrategy]] = {}


def register(name: str):
    def deco(cls: type[SyncStrategy]) -> type[SyncStrategy]:
        cls.name = name
        STRATEGIES[name] = cls
        return cls

    return deco


def get(name: str) -> SyncStrategy:
    from upgrade_infra.staging.sync import cow, dump, physical  # noqa: F401 - register the built-in strategies

    if name not in STRATEGIES:
        raise UnknownName(f"unknown sync strategy {name!r}", fix=f"use one of: {', '.join(sorted(STRATEGIES))}")
    return STRATEGIES[name]()


def names() -> list[str]:
    from upgrade_infra.staging.sync import cow, dump, physical  # noqa: F401

    return sorted(STRATEGIES)


def choose(source, requested: str | None = None, *, stop_source: bool = False) -> SyncStrategy:
    """The strategy for copying ``source`` now: ``requested`` if given (and possible), else ``physical``
    for a staging source (which may be stopped briefly) on a backend with a physical data dir and
    ``dump`` otherwise; production is never stopped unless asked (``--strategy physical --stop-source``).
    """
    from upgrade_infra.backends.interface import PhysicalDataDir, require

    if requested is None:
        requested = "physical" if source.kind == "staging" and source.has(PhysicalDataDir) else "dump"
    strategy = get(requested)
    require(source, strategy)  # a method needing what the backend lacks: exit 2 naming the alternative
    problem = strategy.unavailable(source, stop_source=stop_source)
    if problem:
        raise BadInput(problem[0], fix=problem[1], strategy=requested, source=source.name)
    return strategy


__all__ = ["Copy", "Progress", "STRATEGIES", "SyncStrategy", "choose", "get", "names", "no_progress", "register"]
