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

from collections.abc import Callable

from upgrade_infra.core.errors import BadInput
from upgrade_infra.core.registry import GROUPS, Registry
from upgrade_infra.staging.sync.base import Copy, Progress, SyncStrategy, no_progress


def _named(name: str, cls: type[SyncStrategy]) -> type[SyncStrategy]:
    cls.name = name
    return cls


#: sync methods by name (classes); the built-ins and third-party ones register through the
#: ``upgrade_infra.sync_methods`` entry-point group
STRATEGIES: Registry[type[SyncStrategy]] = Registry("sync strategy", GROUPS["sync method"], adapt=_named)


def register(name: str) -> Callable[[type[SyncStrategy]], type[SyncStrategy]]:
    return STRATEGIES.register(name)


def get(name: str) -> SyncStrategy:
    return STRATEGIES.get(name)()


def names() -> list[str]:
    return STRATEGIES.names()


def choose(source, requested: str | None = None, *, stop_source: bool = False) -> SyncStrategy:
    """The strategy for copying ``source`` now: ``requested`` if given (and possible), else, among the
    methods whose ``default_for`` names the source's kind and whose required capabilities the source's
    backend has, the most specific one: ``physical`` for a staging source on a backend with a physical
    data dir (it may be stopped briefly), ``dump`` otherwise; production is never stopped unless asked
    (``--strategy physical --stop-source``).
    """
    from upgrade_infra.backends.interface import require

    if requested is None:
        fits = [(len(cls.default_for), n) for n, cls in STRATEGIES.items()
                if source.kind in cls.default_for and all(source.has(c) for c in cls.requires)]
        if not fits:
            raise BadInput(f"no sync strategy copies a {source.kind} source by default",
                           fix=f"name one with --strategy ({', '.join(names())})", source=source.name)
        requested = min(fits)[1]
    strategy = get(requested)
    require(source, strategy)  # a method needing what the backend lacks: exit 2 naming the alternative
    problem = strategy.unavailable(source, stop_source=stop_source)
    if problem:
        raise BadInput(problem[0], fix=problem[1], strategy=requested, source=source.name)
    return strategy


__all__ = ["Copy", "Progress", "STRATEGIES", "SyncStrategy", "choose", "get", "names", "no_progress", "register"]
