"""PostgreSQL installations and clusters: find server binaries, build initdb/pg_ctl argv, run a cluster.

Binaries: PATH, ``pg_config --bindir``, ``/usr/lib/postgresql/*/bin``, then the ``pgserver`` wheel.
When the tool runs as root, the server runs as an unprivileged OS user (``postgres``) via runuser.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import importlib.util
import os
import pwd
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from upgrade_infra.core import runner
from upgrade_infra.core.errors import PostgresError, PostgresNotFound

SOCKET_PATH_MAX = 100  # unix socket paths are limited to ~107 bytes, keep a margin
CONF_NAME = "upgrade_infra.conf"


@dataclass(frozen=True)
class PgInstall:
    bindir: Path
    major: int
    version: str
    source: str  # "system" or "pgserver"

    def bin(self, name: str) -> str:
        return str(self.bindir / name)


def _version_of(bindir: Path) -> str | None:
    exe = bindir / "postgres"
    if not (exe.is_file() and os.access(exe, os.X_OK)):
        return None
    try:
        out = runner.run([str(exe), "--version"], timeout=10).stdout
    except Exception:  # noqa: BLE001 - a broken install is just skipped
        return None
    m = re.search(r"(\d+)(?:\.(\d+))?", out)
    return m.group(0) if m else None


def _candidate_bindirs() -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    if p := shutil.which("postgres"):
        found.append((Path(p).resolve().parent, "system"))
    if pgc := shutil.which("pg_config"):
        try:
            found.append((Path(runner.run([pgc, "--bindir"], timeout=10).stdout.strip()), "system"))
        except Exception:  # noqa: BLE001
            pass
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        found.append((Path(d), "system"))
    spec = importlib.util.find_spec("pgserver")  # located, not imported: its import has side effects
    if spec and spec.submodule_search_locations:
        found.append((Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin", "pgserver"))
    return found


@functools.lru_cache(maxsize=1)
def find_installs() -> tuple[PgInstall, ...]:
    seen: set[Path] = set()
    out = []
    for bindir, source in _candidate_bindirs():
        if bindir in seen:
            continue
        seen.add(bindir)
        ver = _version_of(bindir)
        if ver and (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            out.append(PgInstall(bindir, int(ver.split(".")[0]), ver, source))
    return tuple(out)


def choose_install(major: int | None = None) -> PgInstall:
    installs = find_installs()
    if major is not None:
        installs = tuple(i for i in installs if i.major == major)
    if not installs:
        have = ", ".join(f"{i.major} ({i.source})" for i in find_installs()) or "none"
        want = f"PostgreSQL {major}" if major else "PostgreSQL server binaries"
        raise PostgresNotFound(f"{want} not found (available: {have})",
                               fix="apt-get install postgresql-15, or pip install pgserver (bundles 16)")
    return installs[0]


def server_user() -> str | None:
    """The OS user the server runs as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "upgrade-infra-pg"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    runner.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "upgrade-infra-pg"])
    return "upgrade-infra-pg"


def require_reachable(install: PgInstall, user: str | None) -> None:
    """Refuse at once when the server user cannot reach the server binaries (e.g. the ``pgserver``
    wheel inside a venv in root's 0700 home), naming the directory to change."""
    if user is None:
        return
    from upgrade_infra.core.state import traversal_blocker

    blocker = traversal_blocker(install.bindir, user)
    if blocker is not None:
        raise PostgresError(f"PostgreSQL {install.major}'s binaries in {install.bindir} are out of reach of the "
                            f"server user {user!r}: it cannot traverse {blocker}",
                            fix=f"install the venv outside private directories, or `chmod o+x {blocker}`, "
                                f"or use a system PostgreSQL (apt-get install postgresql-{install.major})")


# -- pure argv builders -------------------------------------------------------------------------
def initdb_argv(install: PgInstall, data_dir: Path, superuser: str = "postgres") -> list[str]:
    return [install.bin("initdb"), "-D", str(data_dir), "-U", superuser, "--auth-local=trust",
            "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-instructions"]


def pg_ctl_argv(install: PgInstall, action: str, data_dir: Path, log: Path | None = None,
                mode: str = "fast", timeout: int = 60) -> list[str]:
    argv = [install.bin("pg_ctl"), action, "-D", str(data_dir), "-w", "-t", str(timeout)]
    if action in ("start", "restart") and log is not None:
        argv += ["-l", str(log)]
    if action in ("stop", "restart"):
        argv += ["-m", mode]
    return argv


def conf_text(port: int, socket_dir: Path, settings: dict | None = None) -> str:
    # the socket is for the server user and root only (staging services connect over TCP with passwords)
    lines = [f"port = {port}", f"unix_socket_directories = '{socket_dir}'", "listen_addresses = '127.0.0.1'",
             "unix_socket_permissions = 0700"]
    for k, v in (settings or {}).items():
        lines.append(f"{k} = '{v}'" if isinstance(v, str) else f"{k} = {v}")
    return "# written by upgrade-infra; edit the manifest instead\n" + "\n".join(lines) + "\n"


def socket_dir_for(env_dir: Path) -> Path:
    """The env's socket dir, or a short one under /tmp when the path would be too long for a socket."""
    d = env_dir / "pg" / "run"
    if len(str(d)) + len("/.s.PGSQL.65535") <= SOCKET_PATH_MAX:
        return d
    return Path("/tmp") / f"uinfra-{hashlib.sha256(str(env_dir).encode()).hexdigest()[:12]}"


@dataclass
class Cluster:
    install: PgInstall
    data_dir: Path
    socket_dir: Path
    port: int
    log_path: Path
    os_user: str | None

    @property
    def superuser(self) -> str:
        return "postgres"

    def admin_conninfo(self, dbname: str = "postgres") -> str:
        return f"host={self.socket_dir} port={self.port} user={self.superuser} dbname={dbname}"

    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def _own(self, *paths: Path) -> None:
        for p in paths:
            for missing in [d for d in reversed(p.parents) if not d.exists()]:
                missing.mkdir(exist_ok=True)
                os.chmod(missing, 0o711)  # directories made on the way: the server user traverses them
            p.mkdir(exist_ok=True)
            os.chmod(p, 0o700)
            if self.os_user:
                shutil.chown(p, self.os_user, self.os_user)

    def init(self, settings: dict | None = None) -> None:
        self._own(self.data_dir, self.socket_dir)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        runner.run(initdb_argv(self.install, self.data_dir), user=self.os_user, timeout=120)
        self.write_conf(settings)

    def write_conf(self, settings: dict | None = None) -> None:
        conf = self.data_dir / CONF_NAME
        conf.write_text(conf_text(self.port, self.socket_dir, settings))
        main = self.data_dir / "postgresql.conf"
        include = f"include_if_exists = '{CONF_NAME}'"
        if include not in main.read_text():
            with open(main, "a") as f:
                f.write(f"\n{include}\n")
        if self.os_user:
            shutil.chown(conf, self.os_user, self.os_user)
            os.chmod(conf, 0o600)

    def running(self) -> bool:
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return False
        try:
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, 0)
            return True
        except (ValueError, IndexError, ProcessLookupError, PermissionError):
            return False

    def start(self) -> float:
        if self.running():
            return 0.0
        self._own(self.socket_dir)
        if not self.log_path.exists():
            self.log_path.touch(mode=0o600)
        if self.os_user:
            shutil.chown(self.log_path, self.os_user, self.os_user)
        t0 = time.monotonic()
        try:
            runner.run(pg_ctl_argv(self.install, "start", self.data_dir, self.log_path), user=self.os_user,
                       timeout=90)
        except Exception as e:  # noqa: BLE001
            raise PostgresError(f"PostgreSQL in {self.data_dir} did not start: {e}. Last log lines: "
                                + " | ".join(self.log_tail(5)), fix=f"see {self.log_path}") from None
        return time.monotonic() - t0

    def stop(self, mode: str = "fast") -> float:
        if not self.running():
            return 0.0
        t0 = time.monotonic()
        runner.run(pg_ctl_argv(self.install, "stop", self.data_dir, mode=mode), user=self.os_user, timeout=90)
        return time.monotonic() - t0

    def log_tail(self, n: int = 10) -> list[str]:
        try:
            return self.log_path.read_text(errors="replace").strip().splitlines()[-n:]
        except OSError:
            return []

    def run_tool(self, name: str, *args: str, timeout: float | None = None, **kw) -> runner.Completed:
        """Run a client tool (pg_dump, pg_restore, psql…) of this install (clients may run as root)."""
        return runner.run([self.install.bin(name), *args], timeout=timeout, **kw)
