"""Port blocks: PostgreSQL at ``port_base``, each service at ``port_base + offset``.

Pure functions compute the ports; ``check_free`` names the process holding a taken port.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping

import psutil

from .errors import BadInput, PortInUse
from .manifest import Manifest
from .manifest_checks import PG_OFFSET, block_size

POSTGRES = "postgres"


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


def holder_of(port: int) -> str | None:
    """Who listens on 127.0.0.1:port (or any address), as 'pid N (cmd)'; None if free."""
    try:
        conns = psutil.net_connections(kind="inet")
    except psutil.Error:
        conns = []
    for c in conns:
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port:
            try:
                cmd = " ".join(psutil.Process(c.pid).cmdline()[:3]) if c.pid else "?"
            except psutil.Error:
                cmd = "?"
            return f"pid {c.pid} ({cmd})"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is not "taken"
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return "an unknown process"
    return None


def check_free(ports: Mapping[str, int], env: str) -> None:
    for what, port in ports.items():
        holder = holder_of(port)
        if holder:
            raise PortInUse(f"port {port} ({what} of environment {env!r}) is taken by {holder}",
                            fix="stop that process, or move the environment's port_base in the manifest",
                            port=port, holder=holder)
