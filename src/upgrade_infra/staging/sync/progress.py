"""A rich progress display for sync: one bar per phase with MB done, MB/s and elapsed time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from upgrade_infra.staging.sync.base import Progress as ProgressFn
from upgrade_infra.staging.sync.base import no_progress


@contextmanager
def rich_progress(enabled: bool = True, console: Console | None = None) -> Iterator[ProgressFn]:
    """Yields a ``progress(phase, done, total)`` callback drawing bars on stderr (nothing when disabled)."""
    if not enabled:
        yield no_progress
        return
    bars = Progress(TextColumn("{task.description:<22}"), BarColumn(), DownloadColumn(binary_units=False),
                    TransferSpeedColumn(), TimeElapsedColumn(), console=console or Console(stderr=True),
                    transient=False)
    tasks: dict[str, int] = {}

    def update(phase: str, done: int, total: int | None) -> None:
        if phase not in tasks:
            tasks[phase] = bars.add_task(phase, total=total)
        bars.update(tasks[phase], completed=done, total=total)

    with bars:
        yield update
