"""A throw-away copy of a stack, for tests, benchmarks and tools: a private manifest on free ports
(:func:`upgrade_infra.stack.private_copy.private_copy`) and a private state dir in a fresh temporary
directory, optionally with production up and seeded; everything stopped and removed afterwards.

    with private_stack(Path("examples/pa-stack/stack.yaml"), seed_mb=8) as s:
        s.env("production").status()
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from upgrade_infra.operations.session import Session, stop_everything
from upgrade_infra.stack.private_copy import private_copy


def private_root(prefix: str = "uinfra-", base: Path | None = None) -> Path:
    """A new temporary directory, 0711: PostgreSQL runs as its own user and must traverse into it."""
    root = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    os.chmod(root, 0o711)
    return root


@contextmanager
def private_stack(source: Path, prefix: str = "uinfra-", seed_mb: float | None = None, *,
                  edit: Callable[[Any], None] | None = None, base: Path | None = None,
                  up: str | None = "production") -> Iterator[Session]:
    """A Session on a private copy of ``source`` (``edit`` applied to its manifest; under ``base`` if
    given) with environment ``up`` brought up and seeded (``seed_mb``; ``up=None``: nothing started);
    every environment stopped and the directory removed afterwards."""
    root = private_root(prefix, base)
    s = Session(private_copy(root / "stack", source, edit), root / "state")
    try:
        if up:
            s.env(up).up(seed_mb=seed_mb)
        yield s
    finally:
        stop_everything(s)
        shutil.rmtree(root, ignore_errors=True)
