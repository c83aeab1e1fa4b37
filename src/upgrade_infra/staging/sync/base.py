"""What every sync strategy shares: the interface, the two-phase :class:`Copy`, progress while a
client tool runs, and the copy of services' data directories."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from upgrade_infra.core import fsutil, runner

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment
    from upgrade_infra.backends.interface import Capability

# progress(phase, bytes_done, bytes_total_or_None): called a few times a second while copying
Progress = Callable[[str, int, int | None], None]
POLL_S = 0.25


def no_progress(phase: str, done: int, total: int | None) -> None:
    return None


@dataclass
class Copy:
    """New data in the target, not yet in place. ``commit`` swaps it in; ``abort`` restores the old."""

    strategy: str
    databases: dict[str, str]  # manifest database -> database in the target cluster holding the copy
    stats: dict[str, Any] = field(default_factory=dict)
    on_commit: list[Callable[[], None]] = field(default_factory=list)
    on_abort: list[Callable[[], None]] = field(default_factory=list)

    def commit(self) -> None:
        for fn in self.on_commit:
            fn()
        self.on_commit.clear()
        self.on_abort.clear()

    def abort(self) -> None:
        for fn in reversed(self.on_abort):
            try:
                fn()
            except Exception:  # noqa: BLE001 - best effort: the caller re-raises the original error
                continue
        self.on_abort.clear()
        self.on_commit.clear()


class SyncStrategy(ABC):
    name: ClassVar[str] = "?"
    kind: ClassVar[str] = "sync method"
    #: backend capabilities it needs (``backends.interface``); refused with exit 2 where missing
    requires: ClassVar[frozenset[type[Capability]]] = frozenset()
    #: what to use instead on a backend without them
    alternative: ClassVar[str | None] = None
    #: the source's live schema can be read before copying (masking rules are checked first)
    reads_live_source: ClassVar[bool] = True
    #: the copy may change the source (``cow`` takes a restore point of it when it has none): the
    #: source is then held exclusively for the copy, not shared with other readers
    changes_source: ClassVar[bool] = False

    @abstractmethod
    def unavailable(self, source: Environment, *, stop_source: bool = False) -> tuple[str, str] | None:
        """(problem, fix) when this strategy cannot copy ``source`` now; None when it can."""

    @abstractmethod
    def bytes_needed(self, source: Environment) -> int:
        """Disk the copy needs in the state dir (checked before anything is created)."""

    @abstractmethod
    def copy(self, source: Environment, target: Environment, progress: Progress, *,
             stop_source: bool = False) -> Copy: ...


def run_watched(argv: Sequence[str] | Callable[[], runner.Completed], measure: Callable[[], int], phase: str,
                total: int | None, progress: Progress, **run_kw: Any) -> runner.Completed:
    """``runner.run`` of ``argv`` (or the call ``argv``, e.g. a client tool through the environment's
    database handle) in a worker thread while ``measure()`` (bytes so far) feeds ``progress``."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        fut = pool.submit(argv) if callable(argv) else pool.submit(runner.run, argv, **run_kw)
        while True:
            try:
                res = fut.result(timeout=POLL_S)
                break
            except FutureTimeout:
                progress(phase, _safe(measure), total)
    done = _safe(measure)
    progress(phase, max(done, total or 0) if total else done, total or done)
    return res


def _safe(measure: Callable[[], int]) -> int:
    try:
        return int(measure())
    except Exception:  # noqa: BLE001 - a failed measurement only skips a progress tick
        return 0


def service_dirs(env: Environment) -> dict[str, Path]:
    """Where each service's live data is on the host (the backend's ``ServiceData``)."""
    from upgrade_infra.restore.datadirs import live, services_with_data

    return {n: live(env, n) for n in services_with_data(env)}


def data_dirs_bytes(env: Environment) -> int:
    return sum(fsutil.tree_bytes(p) for p in service_dirs(env).values() if p.exists())


def copy_data_dirs(source: Environment, target: Environment, copy: Copy, progress: Progress) -> None:
    """Copy the services' data dirs (reflink where possible) beside the target's current ones."""
    t0 = time.monotonic()
    total = data_dirs_bytes(source)
    done = 0
    dst_dirs = service_dirs(target)
    for svc, src in service_dirs(source).items():
        dst = dst_dirs[svc]
        prev = dst.with_name(f".{svc}.prev")
        target.state.remove(prev, ignore_errors=True)
        if dst.exists():
            dst.rename(prev)
            copy.on_abort.append(lambda d=dst, p=prev: (target.state.remove(d, ignore_errors=True), p.rename(d)))
            copy.on_commit.append(lambda p=prev: target.state.remove(p, ignore_errors=True))
        else:
            copy.on_abort.append(lambda d=dst: target.state.remove(d, ignore_errors=True))
        if src.exists():
            fsutil.copy_tree(src, dst)
            done += fsutil.tree_bytes(dst)
        else:
            dst.mkdir(parents=True, mode=0o700)
        progress("data dirs", done, total or done)
    copy.stats["data_dirs"] = {"bytes": done, "seconds": round(time.monotonic() - t0, 3)}
