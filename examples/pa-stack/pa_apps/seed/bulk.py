"""Size-driven bulk loop: messages and executions in parallel until the target.

Each round inserts into both databases at once (one PostgreSQL backend each,
so two cores are busy), measures ``pg_database_size`` and re-estimates the
bytes per row; batch sizes are quantized so that small measurement noise does
not change what gets seeded.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

QUANTUM = 250
MAX_ROWS = 60_000


@dataclass
class Stream:
    """One bulk table: its batch function, share of the bytes, and estimate."""
    name: str
    insert: Callable[[int], None]
    size: Callable[[], int]
    share: float
    bytes_per_row: float = 600.0
    rows: int = 0

    def plan(self, remaining: float) -> int:
        wanted = remaining * self.share / self.bytes_per_row
        return min(MAX_ROWS, max(QUANTUM, math.ceil(wanted / QUANTUM) * QUANTUM))

    def run(self, rows: int) -> None:
        before = self.size()
        self.insert(rows)
        grown = self.size() - before
        self.rows += rows
        if grown > 0:
            self.bytes_per_row = grown / rows


def fill(target_bytes: int, added: Callable[[], int], streams: list[Stream]) -> int:
    """Run rounds until ``added()`` reaches ``target_bytes``; returns rounds run."""
    rounds = 0
    with ThreadPoolExecutor(max_workers=len(streams), thread_name_prefix="seed") as pool:
        while True:
            remaining = target_bytes - added()
            if remaining <= max(64 * 1024, target_bytes * 0.01):
                return rounds
            # The first round is a small probe so the estimate gets calibrated.
            budget = remaining / 8 if rounds == 0 else remaining
            futures = [pool.submit(s.run, s.plan(budget)) for s in streams]
            for future in futures:
                future.result()
            rounds += 1
