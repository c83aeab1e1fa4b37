"""A throwaway PostgreSQL cluster (postgres refuses to run as root: when we are
root, initdb/pg_ctl run as the ``postgres`` user through ``runuser``)."""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def _bindir() -> Path:
    explicit = os.environ.get("PA_PG_BINDIR")
    if explicit:
        return Path(explicit)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    if candidates:
        return Path(candidates[-1])
    found = shutil.which("pg_ctl")
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found (set PA_PG_BINDIR)")
    return Path(found).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalCluster:
    """``.port`` and ``.create_database(name) -> url`` like the project's pg_cluster."""

    def __init__(self, base_dir: Path | None = None, port: int | None = None):
        self.base_dir = Path(base_dir or tempfile.mkdtemp(prefix="pa-pg-"))
        self.port = port or _free_port()
        self.bindir = _bindir()
        self.data = self.base_dir / "data"
        self.sockets = self.base_dir / "sock"
        self.log = self.base_dir / "postgres.log"
        self._as_postgres = os.geteuid() == 0

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, cwd="/")

    def start(self) -> LocalCluster:
        self.sockets.mkdir(parents=True, exist_ok=True)
        if self._as_postgres:
            shutil.chown(self.base_dir, "postgres")
            shutil.chown(self.sockets, "postgres")
        if not (self.data / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                      "-E", "UTF8", "--locale=C.UTF-8")
        options = f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-o", options, "start")
        return self

    def stop(self, remove: bool = True) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate" if remove else "fast", "-w", "stop")
        if remove:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)
