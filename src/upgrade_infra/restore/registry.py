"""Restore-point strategies, keyed by the name used in the manifest (``policies.snapshot_strategy``)
and on the command line (``--strategy``).

A strategy captures an environment's databases into a restore point and, on rollback, puts them
back in two journaled steps: ``stage`` (make the restore point's databases ready under temporary
names, idempotent) and ``swap`` (set the live databases aside into the quarantine and put the
staged ones in place: renames only, so O(1) whatever the data size, and idempotent).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from upgrade_infra.core.errors import UnknownName

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment
    from upgrade_infra.backends.interface import Capability
    from upgrade_infra.restore.meta import RestorePoint


class Strategy(ABC):
    name: ClassVar[str] = "?"
    kind: ClassVar[str] = "restore-point strategy"
    #: backend capabilities it needs (``backends.interface``); refused with exit 2 where missing
    requires: ClassVar[frozenset[type[Capability]]] = frozenset()
    #: what to use instead on a backend without them
    alternative: ClassVar[str | None] = None
    #: the services must be stopped during capture (a consistent, quiescent copy)
    needs_stopped_services: ClassVar[bool] = True
    #: the restore point's databases stay readable after a rollback (quarantine report runs after
    #: services are back); otherwise the report compares against the live databases before start
    reference_kept: ClassVar[bool] = False
    #: its payload is files that can be exported and restored into another environment
    portable: ClassVar[bool] = True

    def estimate_bytes(self, env: Environment) -> int:
        """Bytes a capture will write (for the disk-space check): the databases' size by default."""
        from upgrade_infra.core import sql

        sizes = sql.database_sizes(env.conninfo())
        return sum(sizes.get(db, 0) for db in env.manifest.postgres.databases)

    @abstractmethod
    def capture(self, env: Environment, rp: RestorePoint, rp_dir: Path) -> None:
        """Fill ``rp.databases`` (and ``rp.files`` for file payloads)."""

    @contextmanager
    def quiesced(self, env: Environment) -> Iterator[None]:
        """The window in which databases and data dirs are captured consistently (default: none)."""
        yield

    def make_spare(self, env: Environment, rp: RestorePoint, rp_dir: Path) -> bool:
        """Prepare a second copy consumed by a rollback (keeps the restore point reusable)."""
        return False

    def has_spare(self, env: Environment, rp: RestorePoint, rp_dir: Path) -> bool:
        return False

    @abstractmethod
    def stage(self, env: Environment, rp: RestorePoint, rp_dir: Path, op: str) -> dict[str, Any]:
        """Make the restore point's databases ready to swap in; returns what ``swap`` needs."""

    def swap(self, env: Environment, staged: dict[str, Any], op: str, qdir: Path) -> dict[str, Any]:
        """Quarantine the live databases and put the staged ones in place. Returns the quarantine.
        Default: the in-cluster O(1) rename swap."""
        from upgrade_infra.restore.swap import swap_in_cluster

        return swap_in_cluster(env, staged["databases"], op)

    @contextmanager
    def reference(self, env: Environment, rp: RestorePoint) -> Iterator[dict[str, str]]:
        """Conninfo per database of the restore point's content (only when ``reference_kept``)."""
        raise NotImplementedError
        yield {}

    @contextmanager
    def quarantined(self, env: Environment, quarantine: dict[str, Any]) -> Iterator[dict[str, str]]:
        """Conninfo per database of the quarantined (failed) state."""
        yield {db: env.conninfo(q) for db, q in quarantine["databases"].items()}

    def verify(self, env: Environment, rp: RestorePoint, rp_dir: Path) -> list[str]:
        return []

    def drop(self, env: Environment, rp: RestorePoint, rp_dir: Path) -> None:
        """Remove what the restore point holds outside its directory (e.g. cloned databases)."""
        return None


STRATEGIES: dict[str, Strategy] = {}


def register_strategy(name: str) -> Callable[[type[Strategy]], type[Strategy]]:
    def deco(cls: type[Strategy]) -> type[Strategy]:
        cls.name = name
        STRATEGIES[name] = cls()
        return cls

    return deco


def strategy_for(env: Environment, name: str) -> Strategy:
    """The strategy ``name``, refused (``MissingCapability``, exit 2) when ``env``'s backend lacks what it needs."""
    from upgrade_infra.backends.interface import require

    st = get_strategy(name)
    require(env, st)
    return st


def get_strategy(name: str) -> Strategy:
    from upgrade_infra.restore import clone, cow, dump, fs  # noqa: F401 - register the built-in strategies

    if name not in STRATEGIES:
        raise UnknownName(f"unknown restore-point strategy {name!r}",
                          fix=f"use one of: auto, {', '.join(sorted(STRATEGIES))} "
                              "(policies.snapshot_strategy or --strategy)")
    return STRATEGIES[name]
