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

from upgrade_infra.core.registry import GROUPS, Registry

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
    #: a rollback swaps the whole database cluster (the quarantine holds a data directory, ``pgdata``)
    #: rather than databases inside the live cluster
    swaps_cluster: ClassVar[bool] = False

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

    # -- what callers used to decide by the strategy's name ----------------------------------------
    def capture_downtime(self, window_s: float) -> float | None:
        """The databases' downtime of the capture that took ``window_s`` in :meth:`quiesced` (None:
        not measured here, e.g. the services were stopped for it, or the capture was online)."""
        return None

    def drop_partial(self, env: Environment, rp_id: str) -> None:
        """Remove what a capture of restore point ``rp_id`` that did not finish may have left outside
        its directory (its metadata may not exist)."""
        return None

    def cluster_databases(self, rp: RestorePoint) -> list[str]:
        """Databases of the restore point that live in the environment's cluster (their size counts
        towards the restore point's disk use)."""
        return []

    def export_steps(self, env: Environment, rp: RestorePoint, src: Path, out: Path, new: RestorePoint
                     ) -> list[tuple[str, Callable[[], Any]]]:
        """The named actions that write the restore point's payload into ``out`` for ``snapshot export``
        and describe it in ``new`` (a copy of ``rp``); the caller journals each as a step. Default: a
        portable payload is copied as it is; a strategy whose payload is not portable converts it
        (``clone`` and ``cow`` write dumps, see :func:`upgrade_infra.restore.dump.export_as_dumps`)."""
        from upgrade_infra.core import fsutil
        from upgrade_infra.core.errors import BadInput
        from upgrade_infra.restore.meta import META, SPARE

        if not self.portable:
            raise BadInput(f"a {self.name} restore point cannot be exported", fix="take a dump restore point")

        def copy() -> dict[str, Any]:
            for entry in src.iterdir():
                if entry.name not in (META, SPARE, "SHA256SUMS"):
                    fsutil.copy_tree(entry, out / entry.name)
            return {"files": len(new.files)}

        return [("copy", copy)]

    def rebuild_steps(self, env: Environment, rp: RestorePoint, src: Path) -> list[tuple[str, Callable[[], Any]]]:
        """The named actions that build the new (not yet started) environment ``env`` from the portable
        restore point in ``src`` (``env restore``); the caller journals each as a step."""
        from upgrade_infra.core.errors import BadInput

        raise BadInput(f"a {self.name} restore point cannot rebuild an environment",
                       fix="export it (`snapshot export`), import the export, then restore from the imported id")


def _instance(name: str, cls: type[Strategy]) -> Strategy:
    cls.name = name
    return cls()


#: strategies by name (one instance each); the built-ins and third-party ones register through the
#: ``upgrade_infra.restore_strategies`` entry-point group
STRATEGIES: Registry[Strategy] = Registry(
    "restore-point strategy", GROUPS["restore-point strategy"], adapt=_instance,
    fix="use one of: auto, {names} (policies.snapshot_strategy or --strategy)")


def register_strategy(name: str) -> Callable[[type[Strategy]], type[Strategy]]:
    return STRATEGIES.register(name)


def strategy_for(env: Environment, name: str) -> Strategy:
    """The strategy ``name``, refused (``MissingCapability``, exit 2) when ``env``'s backend lacks what it needs."""
    from upgrade_infra.backends.interface import require

    st = get_strategy(name)
    require(env, st)
    return st


def get_strategy(name: str) -> Strategy:
    return STRATEGIES.get(name)
