"""Per-environment lock: one mutating command per environment at a time.

``with env_lock(state, "production", "upgrade production --to assistant=1.1.0") as lk: ...``

The lock is an ``flock`` on ``<state>/locks/<env>.lock``: the kernel releases it when the holder
dies, whatever way it dies (kill -9, power loss), so a dead holder can never block anyone. The
file also holds the holder's pid, start time and command, so a refusal names who holds it. A file
still naming a holder while the flock is free means that holder died mid-command: the next
command takes the lock over and reports it in ``lk.stale`` (the journal then says what to finish).
The lock is re-entrant inside one process (an upgrade's automatic rollback runs under its lock).
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

from .errors import LockHeld
from .journal import user_name as journal_user
from .manifest import check_name
from .state import StateDir

_held: dict[str, int] = {}  # lock path -> nesting depth in this process


@dataclass
class EnvLock:
    env: str
    path: Path
    holder: dict[str, Any]
    stale: dict[str, Any] | None = None  # the dead holder whose lock was taken over
    nested: bool = False
    acquired_at: float = field(default_factory=time.time)


def lock_path(state: StateDir | Path, env: str) -> Path:
    root = state.root if isinstance(state, StateDir) else Path(state)
    return root / "locks" / f"{check_name('environment', env)}.lock"


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
    """Who holds the lock now (``alive`` False: a dead holder's leftover, free to take)."""
    path = lock_path(state, env)
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        info = _read(fd)
        if info is None:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            info["alive"] = False
        except BlockingIOError:
            info["alive"] = True
        return info
    finally:
        os.close(fd)


def describe(info: dict[str, Any]) -> str:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("since", 0)))
    return f"pid {info.get('pid')} ({info.get('command', '?')}) since {since}"


@contextmanager
def env_lock(state: StateDir | Path, env: str, command: str) -> Iterator[EnvLock]:
    """Hold the environment's lock for the block; refuse (``LockHeld``) when a live process has it."""
    path = lock_path(state, env)
    key = str(path)
    if _held.get(key):
        _held[key] += 1
        try:
            yield EnvLock(env, path, _me(command), nested=True)
        finally:
            _held[key] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _read(fd) or {}
            raise LockHeld(f"environment {env!r} is locked by {describe(info)}",
                           fix="wait for that command to finish; if it hangs, stop that pid, then run "
                               f"`upgrade-infra resume {env}`", pid=info.get("pid"),
                           command=info.get("command")) from None
        stale = _read(fd)
        me = _me(command)
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(me).encode())
        os.fsync(fd)
        _held[key] = 1
        try:
            yield EnvLock(env, path, me, stale=stale)
        finally:
            _held.pop(key, None)
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
