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

from upgrade_infra.core.errors import CommandFailed

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

    A group is stopped when no member of it runs any more, including processes it forked after the
    SIGTERM and processes whose main thread exited while another thread still runs (Node and
    Python apps do that while they close their sockets: the leader shows as a zombie, the process
    still holds its files). Stopping them together makes the wait the slowest service's, not the sum.
    """
    pgids: dict[int, list[int]] = {}  # pgid -> indices of the handles leading it
    how = ["not running"] * len(handles)
    for i, h in enumerate(handles):
        _reap(h.pid)
        if _own_group(h) and group_running(h.pid):
            pgids.setdefault(h.pid, []).append(i)  # spawned with its own session: pgid == pid
            how[i] = "terminated"
    for pgid in pgids:
        _signal_group(pgid, signal.SIGTERM)
    left = _wait_groups_gone(list(pgids), [h.pid for h in handles], timeout)
    if left:
        for pgid in left:
            _signal_group(pgid, signal.SIGKILL)
            for i in pgids[pgid]:
                how[i] = "killed"
        _wait_groups_gone(left, [h.pid for h in handles], 5)
    for h in handles:
        _reap(h.pid)
    return how


def _own_group(h: ProcessHandle) -> bool:
    """Whether process group ``h.pid`` is still the one this handle started: its leader is the
    handle's process, or the leader is gone (a pid stays reserved while its group has members, so
    members left behind are ours). A pid reused by another process means the group is not ours."""
    try:
        p = psutil.Process(h.pid)
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False
    try:
        return abs(p.create_time() - h.create_time) < 0.01
    except psutil.Error:
        return False


def _wait_groups_gone(pgids: list[int], reap: list[int], timeout: float) -> list[int]:
    """Wait until no process of these groups runs (re-scanned each round: members forked late count).
    Returns the groups with members still running at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        for pid in reap:
            _reap(pid)
        members = _members(set(pgids))
        left = sorted({g for g, p in members if _running(p)})
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


def group_running(pgid: int) -> list[int]:
    """Pids of the group's members that still run (zombies whose threads all exited do not count)."""
    return [p.pid for _, p in _members({pgid}) if _running(p)]


def _members(pgids: set[int]) -> list[tuple[int, psutil.Process]]:
    out = []
    for p in psutil.process_iter(["pid"]):
        try:
            g = os.getpgid(p.pid)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
        if g in pgids:
            out.append((g, p))
    return out


def _running(p: psutil.Process) -> bool:
    """Runs unless gone or a zombie all of whose threads have exited: a zombie *leader* with a live
    thread still holds the process's files and sockets."""
    try:
        if p.status() != psutil.STATUS_ZOMBIE:
            return True
    except psutil.Error:
        return False
    return bool(live_threads(p.pid))


def live_threads(pid: int) -> list[int]:
    """Thread ids of ``pid`` that are not zombies (Linux /proc; empty elsewhere or when gone)."""
    out = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for tid in tids:
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        state = stat[stat.rindex(")") + 2:][:1]
        if state not in ("Z", "X"):
            out.append(int(tid))
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


def attached(argv: Sequence[str], *, env: Mapping[str, str], cwd: str | Path) -> int:
    """Run a command attached to the caller's terminal (stdin/stdout/stderr inherited); its exit code."""
    try:
        return subprocess.run([str(a) for a in argv], env=dict(env), cwd=cwd, check=False).returncode
    except FileNotFoundError as e:
        raise CommandFailed(f"cannot run {argv[0]}: not found", fix=f"install {argv[0]} or fix the path",
                            argv=list(argv)) from e
