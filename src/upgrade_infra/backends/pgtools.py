"""The one builder of ``pg_dump``/``pg_restore`` arguments, and running them through a :class:`Database`.

The arguments exclude the program: :meth:`Database.run_tool` runs the tool of the server's major
wherever it lives (on the host for ``local``; inside the database container for ``compose``). Dumps
use the directory format (``-Fd``) so that ``-j`` dumps and restores in parallel; the output
directory is a :class:`HostPath` the backend maps when its tools run elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from upgrade_infra.backends.interface import HostPath, ToolArg

if TYPE_CHECKING:
    from upgrade_infra.backends.interface import Database
    from upgrade_infra.core.runner import Completed

#: parallel jobs of restore-point dumps and restores
JOBS = max(2, min(4, os.cpu_count() or 2))


def dump_args(conninfo: str, out_dir: Path, jobs: int = JOBS, *, compress: int | None = None,
              no_sync: bool = False) -> list[ToolArg]:
    """``pg_dump`` arguments: directory format, ``jobs`` in parallel, into ``out_dir`` (pure).
    ``compress=0`` and ``no_sync`` for a throwaway local copy (staging sync)."""
    args: list[ToolArg] = ["-Fd", "-j", str(jobs)]
    if compress is not None:
        args += ["-Z", str(compress)]
    if no_sync:
        args.append("--no-sync")
    return [*args, "-f", HostPath(Path(out_dir), "w"), "-d", conninfo]


def restore_args(conninfo: str, dump_dir: Path, jobs: int = JOBS) -> list[ToolArg]:
    """``pg_restore`` arguments: ``jobs`` in parallel, stop at the first error (pure)."""
    return ["-j", str(jobs), "--exit-on-error", "-d", conninfo, HostPath(Path(dump_dir), "r")]


def dump(db: Database, name: str, out_dir: Path, jobs: int = JOBS, *, env: dict[str, str] | None = None,
         timeout: float = 7200, **kw: object) -> Completed:
    """``pg_dump`` of database ``name`` of ``db`` into ``out_dir`` with ``db``'s own tools."""
    return db.run_tool("pg_dump", dump_args(db.tool_conninfo(name), out_dir, jobs, **kw), env=env,  # type: ignore[arg-type]
                       timeout=timeout)


def restore(db: Database, name: str, dump_dir: Path, jobs: int = JOBS, *, env: dict[str, str] | None = None,
            timeout: float = 7200) -> Completed:
    """``pg_restore`` of ``dump_dir`` into database ``name`` of ``db`` with ``db``'s own tools."""
    return db.run_tool("pg_restore", restore_args(db.tool_conninfo(name), dump_dir, jobs), env=env,
                       timeout=timeout)
