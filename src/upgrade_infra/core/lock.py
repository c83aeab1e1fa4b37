"""Per-environment lock: one mutating command per environment at a time.

``with env_lock(state, "production", "upgrade production --to assistant=1.1.0") as lk: ...``

The lock is an ``flock`` on ``<state>/locks/<env>.lock``: the kernel releases it when the holder
dies, whatever way it dies (kill -9, power loss), so a dead holder can never block anyone. The
file also holds the holder's pid, start time and command, so a refusal names who holds it. A file
still naming a holder while the flock is free means that holder died mid-command: the next
command takes the lock over and reports it in ``lk.stale`` (the journal then says what to finish).
The lock is re-entrant inside one process (an upgrade's automatic rollback runs under its lock).

Two modes: a command that changes an environment takes it *exclusive*; a command that only reads
an environment as a source (``stage create/sync --from production``, ``snapshot export``) takes it
*shared*. Readers run together, but never while an upgrade (or any other mutation) holds it, and an
upgrade never starts under a reader. Shared holders are listed in ``<state>/locks/<env>.readers/``
so a refused writer can name them.

:func:`guard` is what commands use: the lock, plus the refusal (exit 2, naming ``upgrade-infra
resume``) when the journal holds an operation that never finished.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from upgrade_infra.core.errors import BadInput, LockHeld
from upgrade_infra.core.journal import Journal, OpSummary
from upgrade_infra.core.journal import user_name as journal_user
from upgrade_infra.core.names import check_name
from upgrade_infra.core.state import StateDir

_held: dict[str, list] = {}  # lock path -> [nesting depth, shared?] in this process


@dataclass
class EnvLock:
    env: str
    path: Path
    holder: dict[str, Any]
    stale: dict[str, Any] | None = None  # the dead holder whose lock was taken over
    nested: bool = False
    shared: bool = False
    acquired_at: float = field(default_factory=time.time)


def lock_path(state: StateDir | Path, env: str) -> Path:
    root = state.root if isinstance(state, StateDir) else Path(state)
    return root / "locks" / f"{check_name('environment', env)}.lock"


def readers_dir(state: StateDir | Path, env: str) -> Path:
    return lock_path(state, env).with_suffix(".readers")


def readers(state: StateDir | Path, env: str) -> list[dict[str, Any]]:
    """Live shared holders (pid, command, since) of an environment's lock."""
    d = readers_dir(state, env)
    out = []
    for f in sorted(d.glob("*.json")) if d.exists() else []:
        try:
            info = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if _alive(info):
            out.append(info)
        else:
            f.unlink(missing_ok=True)  # a reader killed before it could clean up
    return out


def _alive(info: dict[str, Any]) -> bool:
    try:
        return abs(psutil.Process(int(info["pid"])).create_time() - float(info["create_time"])) < 1
    except (psutil.Error, KeyError, TypeError, ValueError):
        return False


def _me(command: str) -> dict[str, Any]:
    p = psutil.Process()
    return {"pid": os.getpid(), "create_time": p.create_time(), "host": socket.gethostname(),
            "user": journal_user(), "command": command, "since": time.time()}


def _read(fd: int) -> dict[str, Any] | None:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 65536).decode(errors="replace").strip()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return {"pid": None, "command": raw[:200]}


def holder(state: StateDir | Path, env: str) -> dict[str, Any] | None:
    """Who holds the lock now (``alive`` False: a dead holder's leftover, free to take; ``shared``:
    readers hold it, all listed in ``readers``)."""
    path = lock_path(state, env)
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        info = _read(fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except BlockingIOError:  # held: by readers (then the file may name a dead writer) or by a writer
            live = readers(state, env)
            if live:
                return {**live[0], "shared": True, "readers": live, "alive": True}
            return {**(info or {}), "alive": True}
        return {**info, "alive": False} if info else None
    finally:
        os.close(fd)


def describe(info: dict[str, Any]) -> str:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("since", 0)))
    return f"pid {info.get('pid')} ({info.get('command', '?')}) since {since}"


@contextmanager
def env_lock(state: StateDir | Path, env: str, command: str, *, shared: bool = False) -> Iterator[EnvLock]:
    """Hold the environment's lock for the block (``shared``: as a reader); refuse (``LockHeld``)
    when a live process holds it in a conflicting mode. Never waits."""
    path = lock_path(state, env)
    key = str(path)
    if _held.get(key):
        depth, held_shared = _held[key]
        if held_shared and not shared:
            raise LockHeld(f"environment {env!r} is held shared by this process; cannot change it while "
                           f"reading it ({command})", fix="this is a bug in upgrade-infra: please report it")
        _held[key][0] += 1
        try:
            yield EnvLock(env, path, _me(command), nested=True, shared=held_shared)
        finally:
            _held[key][0] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    reader_file: Path | None = None
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _refusal(state, env, fd, command, shared) from None
        me = _me(command)
        stale = None
        if shared:
            rd = readers_dir(state, env)
            rd.mkdir(parents=True, exist_ok=True, mode=0o700)
            reader_file = rd / f"{os.getpid()}-{time.monotonic_ns()}.json"
            rfd = os.open(reader_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(rfd, json.dumps(me).encode())
            finally:
                os.close(rfd)
        else:
            stale = _read(fd)
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, json.dumps(me).encode())
            os.fsync(fd)
        _held[key] = [1, shared]
        try:
            yield EnvLock(env, path, me, stale=stale, shared=shared)
        finally:
            _held.pop(key, None)
            if reader_file is not None:
                reader_file.unlink(missing_ok=True)
            else:
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _refusal(state: StateDir | Path, env: str, fd: int, command: str, shared: bool) -> LockHeld:
    info = _read(fd) if shared else None  # a reader is refused by a writer, whose file names it
    if info is None:
        live = readers(state, env)
        info = live[0] if live else (_read(fd) or {})
        what = (f"is being read by {describe(info)}" + (f" and {len(live) - 1} other(s)" if len(live) > 1 else "")
                if live else f"is locked by {describe(info)}")
    else:
        what = f"is locked by {describe(info)}"
    return LockHeld(f"environment {env!r} {what}; refused: {command}",
                    fix="wait for that command to finish and run this one again; if it hangs, stop that pid, "
                        f"then run `upgrade-infra resume {env}`", pid=info.get("pid"), command=info.get("command"))


READ_ONLY = "read_only"  # in an operation's data: it only reads its environment (snapshot export/import)


def open_operation(state: StateDir | Path, env: str) -> OpSummary | None:
    """The latest interrupted operation that left ``env`` half-done. One that only read it (an export
    killed half-way) does not: ``resume`` cleans up after it, but nothing else has to wait."""
    root = state if isinstance(state, StateDir) else StateDir(Path(state))
    ops = [o for o in Journal(root, env).operations() if not o.finished and not o.data.get(READ_ONLY)]
    return ops[-1] if ops else None


def require_idle(state: StateDir | Path, env: str) -> None:
    """Refuse (exit 2) while the journal holds an operation of ``env`` that never finished."""
    op = open_operation(state, env)
    if op is not None:
        last = op.steps[-1].name if op.steps else "(none)"
        raise BadInput(f"an earlier {op.kind} of {env} ({op.op}, `{op.command}`) was interrupted at step {last}; "
                       f"{env} is half-done", fix=f"finish it first: `upgrade-infra resume {env}`",
                       environment=env, open_op=op.op)


@contextmanager
def guard(state: StateDir | Path, env: str, command: str, *, shared: bool = False,
          allow_open: bool = False) -> Iterator[EnvLock]:
    """The lock discipline of every command: take ``env``'s lock (exclusive to change it, ``shared``
    to read it as a source), then refuse when an interrupted operation of ``env`` waits for
    ``upgrade-infra resume`` (unless ``allow_open``: resume, rollback and destroy finish or remove it).
    A nested guard (same process, e.g. an upgrade's automatic rollback) skips the journal check."""
    with env_lock(state, env, command, shared=shared) as lk:
        if not lk.nested and not allow_open:
            require_idle(state, env)
        yield lk
