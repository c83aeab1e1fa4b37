"""The one place that runs subprocesses.

Builders elsewhere produce argv lists (pure, unit-tested); this module executes them:
``run`` for commands that finish, ``spawn`` for long-lived services, ``stop_process`` to end them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from .errors import CommandFailed

# Variables a child inherits from the tool; everything else it gets is declared explicitly.
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "PYTHONPATH")


def base_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
    env.update(extra or {})
    return env


def as_user(argv: Sequence[str], user: str | None) -> list[str]:
    """Prefix argv so it runs as ``user`` (used for PostgreSQL, which refuses to run as root)."""
    if user is None:
        return list(argv)
    return ["runuser", "-u", user, "--", *argv]


@dataclass
class Completed:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def run(argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | Path | None = None,
        timeout: float | None = None, check: bool = True, input: str | None = None,
        user: str | None = None) -> Completed:
    full = as_user([str(a) for a in argv], user)
    t0 = time.monotonic()
    try:
        p = subprocess.run(full, env=dict(env) if env is not None else None, cwd=cwd, input=input,
                           capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as e:
        raise CommandFailed(f"cannot run {full[0]}: not found", fix=f"install {full[0]} or fix the path",
                            argv=full) from e
    except subprocess.TimeoutExpired as e:
        raise CommandFailed(f"{' '.join(full[:3])}… timed out after {timeout}s", argv=full) from e
    done = Completed(full, p.returncode, p.stdout, p.stderr, time.monotonic() - t0)
    if check and p.returncode != 0:
        tail = (p.stderr or p.stdout).strip().splitlines()[-5:]
        raise CommandFailed(f"{' '.join(full[:4])}… exited {p.returncode}: {' | '.join(tail)}",
                            argv=full, returncode=p.returncode, stderr=p.stderr[-2000:])
    return done


@dataclass(frozen=True)
class ProcessHandle:
    """A spawned process, identified by pid *and* start time so a reused pid is never killed."""

    pid: int
    create_time: float

    def alive(self) -> bool:
        try:
            p = psutil.Process(self.pid)
            return abs(p.create_time() - self.create_time) < 0.01 and p.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def to_dict(self) -> dict:
        return {"pid": self.pid, "create_time": self.create_time}

    @classmethod
    def from_dict(cls, d: Mapping) -> ProcessHandle:
        return cls(int(d["pid"]), float(d["create_time"]))


def spawn(argv: Sequence[str], *, env: Mapping[str, str], cwd: str | Path, log_path: Path,
          user: str | None = None) -> ProcessHandle:
    """Start a detached service in its own session (process group) with output appended to log_path.

    ``user``: run it as that OS user, its primary group and no supplementary groups (staging services)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    ids: dict = {}
    if user is not None:
        import pwd

        ids = {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}
    with open(log_path, "ab", buffering=0) as log:
        log.write(f"\n--- upgrade-infra start {time.strftime('%Y-%m-%dT%H:%M:%S')} {argv[0]}\n".encode())
        try:
            p = subprocess.Popen([str(a) for a in argv], env=dict(env), cwd=cwd, stdout=log,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                 **ids)
        except FileNotFoundError as e:
            raise CommandFailed(f"cannot start {argv[0]}: not found", fix="check the service command") from e
    return ProcessHandle(p.pid, psutil.Process(p.pid).create_time())


def stop_process(handle: ProcessHandle, timeout: float = 10.0) -> str:
    """SIGTERM the process group, SIGKILL after ``timeout``. Returns how it ended."""
    return stop_processes([handle], timeout)[0]


def stop_processes(handles: list[ProcessHandle], timeout: float = 10.0) -> list[str]:
    """Stop several process groups at once: SIGTERM all, wait up to ``timeout``, SIGKILL what is left.

    Stopping them together makes the wait the slowest service's, not the sum of all.
    """
    groups: dict[int, list[psutil.Process]] = {}
    how = ["not running"] * len(handles)
    for i, h in enumerate(handles):
        if not h.alive():
            _reap(h.pid)
            continue
        try:
            pgid = os.getpgid(h.pid)
        except ProcessLookupError:
            continue
        groups[pgid] = _group(pgid)
        how[i] = "terminated"
    for pgid in groups:
        _signal_group(pgid, signal.SIGTERM)
    alive = _wait_gone([p for members in groups.values() for p in members], timeout)
    if alive:
        for pgid, members in groups.items():
            if any(p in alive for p in members):
                _signal_group(pgid, signal.SIGKILL)
                for i, h in enumerate(handles):
                    if how[i] == "terminated" and any(p.pid == h.pid for p in members):
                        how[i] = "killed"
        _wait_gone(alive, 5)
    for h in handles:
        _reap(h.pid)
    return how


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until every process has exited (a zombie counts as exited: an orphaned child lingers
    as one until init reaps it). Returns those still running at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        for p in procs:
            _reap(p.pid)
        alive = [p for p in procs if _running(p)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def _running(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _group(pgid: int) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(p.pid) == pgid:
                out.append(p)
        except (ProcessLookupError, psutil.Error):
            continue
    return out


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
