"""Port blocks: PostgreSQL at ``port_base``, each service at ``port_base + offset``.

Pure functions compute the ports; ``check_free`` names the process holding a taken port.
"""

from __future__ import annotations

import os
import random
import socket
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import psutil

from upgrade_infra.core.errors import BadInput, PortInUse
from upgrade_infra.stack.crosschecks import PG_OFFSET, block_size
from upgrade_infra.stack.manifest import Manifest

POSTGRES = "postgres"
PORT_WINDOW_ENV = "UPGRADE_INFRA_TEST_PORTS"  # lo-hi: where free_block looks (parallel test runs get disjoint ones)
DEFAULT_WINDOW_LO = 28000  # above the reference stack's ports (25400-25420, staging 26000-26999)


def env_ports(m: Manifest, port_base: int) -> dict[str, int]:
    ports = {POSTGRES: port_base + PG_OFFSET}
    ports.update({name: port_base + s.port for name, s in m.services.items()})
    return ports


def allocate_block(m: Manifest, taken_bases: Iterable[int]) -> int:
    """First free block in ``staging.port_range`` not overlapping any taken block."""
    size = block_size(m)
    lo, hi = m.staging.port_range
    taken = sorted(set(taken_bases))
    base = lo
    while base + size - 1 <= hi:
        clash = next((t for t in taken if base <= t + size - 1 and t <= base + size - 1), None)
        if clash is None:
            return base
        base = clash + size
    raise BadInput(f"no free port block of {size} in staging.port_range {lo}-{hi}",
                   fix="destroy unused staging environments or widen staging.port_range")


def ephemeral_low() -> int:
    """The lowest port of the kernel's ephemeral range (outgoing connections take ports from it)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def port_window(spec: str | None = None) -> tuple[int, int]:
    """Where :func:`free_block` looks: ``spec`` or ``$UPGRADE_INFRA_TEST_PORTS`` (``lo-hi``), else from
    28000 to just below the kernel's ephemeral range, where no outgoing connection of anything on
    the machine can take a port between the check and the bind."""
    spec = spec if spec is not None else os.environ.get(PORT_WINDOW_ENV)
    if spec:
        try:
            lo, hi = (int(x) for x in spec.split("-"))
        except ValueError:
            raise BadInput(f"bad port window {spec!r} ({PORT_WINDOW_ENV})", fix="write lo-hi, e.g. 32000-32499") from None
        if not 0 < lo <= hi < 65536:
            raise BadInput(f"bad port window {spec!r} ({PORT_WINDOW_ENV})", fix="1 <= lo <= hi <= 65535")
        return lo, hi
    return DEFAULT_WINDOW_LO, min(ephemeral_low(), 32768) - 1


def free_block(span: int = 1, *, window: tuple[int, int] | None = None, step: int = 10, tries: int = 200) -> int:
    """The first port of ``span`` consecutive ports nobody holds, picked at random in ``window``
    (default :func:`port_window`) on a ``step`` grid (random: parallel callers rarely pick the same)."""
    lo, hi = window or port_window()
    rng = random.Random(os.getpid() ^ time.time_ns())
    step = step if hi - lo + 1 - span >= step else 1
    for _ in range(tries if hi - lo + 1 >= span else 0):
        base = rng.randrange(lo, hi - span + 2, step)
        if all(holder_of(p) is None for p in range(base, base + span)):
            return base
    raise PortInUse(f"no free block of {span} port(s) in {lo}-{hi}",
                    fix=f"stop what holds ports there, or set {PORT_WINDOW_ENV}=lo-hi to another window")


def free_port(window: tuple[int, int] | None = None) -> int:
    """One free port (a scratch or side cluster, a test server): see :func:`free_block`."""
    return free_block(1, window=window, step=1)


def holder_of(port: int) -> str | None:
    """Who listens on 127.0.0.1:port (or any address), as 'pid N (cmd)'; None if free."""
    try:
        conns = psutil.net_connections(kind="inet")
    except psutil.Error:
        conns = []
    for c in conns:
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port:
            if not c.pid:  # e.g. a process whose main thread exited while a thread keeps the socket
                return socket_owner(port) or "a listening socket no process lists"
            return describe(c.pid)
    if not _bindable(port):
        return socket_owner(port) or "a socket that cannot be bound yet (no process lists it)"
    return None


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is not "taken"
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect(("127.0.0.1", port))
        except OSError:
            return False
    return True


def busy(port: int) -> str | None:
    """Why ``port`` is not free yet: it accepts connections, or it cannot be bound; None when free."""
    if _accepts(port):
        return "accepts connections"
    if not _bindable(port):
        return "cannot be bound"
    return None


def listen_inodes(port: int) -> set[str]:
    """Socket inodes listening on ``port`` (any address), from /proc/net/tcp and tcp6."""
    out = set()
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 9 and f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                out.add(f[9])
    return out


def socket_owner(port: int) -> str | None:
    """The process (and thread) holding the listening socket of ``port``, found through the file
    tables of every thread: also finds a process whose main thread has exited."""
    inodes = {f"socket:[{i}]" for i in listen_inodes(port) if i != "0"}
    if not inodes:
        return None
    for pid in (d for d in os.listdir("/proc") if d.isdigit()):
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            fd_dir = f"/proc/{pid}/task/{tid}/fd"
            try:
                links = {os.readlink(f"{fd_dir}/{fd}") for fd in os.listdir(fd_dir)}
            except OSError:
                continue
            if links & inodes:
                return describe(int(pid), int(tid))
            if links:
                break  # threads share one file table: one readable look per process is enough
    return None


def describe(pid: int, tid: int | None = None) -> str:
    """'pid N (cmd)', saying so when the process's main thread has exited but another still runs."""
    try:
        proc = psutil.Process(pid)
        zombie = proc.status() == psutil.STATUS_ZOMBIE
        try:
            cmd = " ".join(proc.cmdline()[:3])
        except psutil.Error:
            cmd = ""
        cmd = cmd or proc.name()
    except psutil.Error:
        return f"pid {pid} (?)"
    if zombie:
        thread = f"thread {tid}" if tid and tid != pid else "a thread"
        return f"pid {pid} ({cmd}): its main thread has exited, {thread} still holds the socket"
    return f"pid {pid} ({cmd})"


def wait_free(ports: Mapping[str, int], timeout: float, interval: float = 0.05) -> dict[str, str]:
    """Wait up to ``timeout`` until every port neither accepts connections nor refuses a bind.
    Returns what is still busy at the deadline: name -> 'port P accepts connections (held by …)'."""
    deadline = time.monotonic() + timeout
    while True:
        left = {n: (p, why) for n, p in ports.items() if (why := busy(p))}
        if not left or time.monotonic() >= deadline:
            return {n: f"port {p} {why} (held by {holder_of(p) or 'nobody any more'})" for n, (p, why) in left.items()}
        time.sleep(interval)


def check_free(ports: Mapping[str, int], env: str) -> None:
    for what, port in ports.items():
        holder = holder_of(port)
        if holder:
            raise PortInUse(f"port {port} ({what} of environment {env!r}) is taken by {holder}",
                            fix="stop that process, or move the environment's port_base in the manifest",
                            port=port, holder=holder)
