"""The embedded default backend: a local PostgreSQL cluster and services as supervised processes.

Everything local lives here: the cluster (``postgres.Cluster``: data dir, socket dir, ``pg_ctl``), the
services' processes and pids, the port block (``backend_state["port_base"]``), data dirs and logs
under the environment's directory. The rest of the package sees the neutral interface only.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import shutil
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from upgrade_infra.backends import health
from upgrade_infra.backends.interface import (
    Database,
    Endpoint,
    Environment,
    EnvStatus,
    PhysicalDataDir,
    ScratchServers,
    ServerInfo,
    ServiceData,
    ServiceStatus,
    ToolArg,
)
from upgrade_infra.backends.local import postgres as pglib
from upgrade_infra.backends.local.postgres import Cluster
from upgrade_infra.backends.placement import PortBlock, new_port_base
from upgrade_infra.backends.registry import register_backend
from upgrade_infra.backends.results import EnvDown, EnvUp
from upgrade_infra.core import runner
from upgrade_infra.core.errors import CommandFailed, ServiceNotReady, ServiceStillRunning
from upgrade_infra.core.state import TRAVERSE, StateDir, unreachable_for
from upgrade_infra.stack import templates
from upgrade_infra.stack.manifest import Manifest
from upgrade_infra.stack.ports import (
    POSTGRES,
    check_free,
    free_port,
    wait_free,
)

log = logging.getLogger(__name__)

INSTALL_MARKER = ".installed"
#: where the tool reaches the cluster and the services, and where they reach each other: the same
#: loopback address for local processes (a container backend separates them)
TOOL_HOST = SERVICE_HOST = "127.0.0.1"


STAGING_USER = "upgrade-infra-stg"


def staging_user() -> str | None:
    """The unprivileged OS user staging services run as (created on first use), or None when not root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(STAGING_USER)
    except KeyError:
        runner.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                    "--shell", "/usr/sbin/nologin", STAGING_USER])
    return STAGING_USER


def share_with_group(root: Path, gid: int, top: Path) -> None:
    """Let group ``gid`` read ``root`` (an install: code, no secrets) and traverse the dirs from ``top`` to it.

    The one place the tool sets group bits outside PostgreSQL's traversal: staging services run as an
    unprivileged user and must read the code they run. Owner stays root; nothing becomes writable.
    """
    chain = [top, *[top / p for p in root.relative_to(top).parents if str(p) != "."][::-1]]
    for d in chain:
        os.chown(d, -1, gid)
        os.chmod(d, os.stat(d).st_mode & 0o700 | 0o010)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [dirpath, *(os.path.join(dirpath, f) for f in filenames + dirnames)]:
            st = os.lstat(name)
            if stat.S_ISLNK(st.st_mode):
                continue
            os.chown(name, -1, gid)
            mode = st.st_mode & 0o700
            os.chmod(name, mode | ((mode >> 3) & 0o050))  # g+r, g+x where the owner has x


def private_file(path: Path) -> None:
    """Create ``path`` 0600 (its dir 0700) if missing, and make it 0600 if it exists."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    os.chmod(path, 0o600)


# -- the database handle and the capabilities --------------------------------------------------------
class LocalDatabase(Database):
    """A local cluster: client tools from its install on the host, connections over its socket dir."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    @property
    def major(self) -> int:
        return self.cluster.install.major

    @property
    def version(self) -> str:
        return self.cluster.install.version

    def conninfo(self, db: str = "postgres") -> str:
        return self.cluster.admin_conninfo(db)

    def endpoint(self) -> Endpoint:
        return Endpoint(TOOL_HOST, self.cluster.port, "postgresql")

    def service_endpoint(self) -> Endpoint:
        return Endpoint(SERVICE_HOST, self.cluster.port, "postgresql")

    def run_tool(self, tool: str, args: Sequence[ToolArg], *, stdout_path: Path | None = None,
                 stdin_path: Path | None = None, env: dict[str, str] | None = None,
                 timeout: float | None = None, check: bool = True) -> runner.Completed:
        argv = [self.cluster.install.bin(tool), *(str(a) for a in args)]
        full_env = runner.base_env(env) if env is not None else None
        if stdout_path is None and stdin_path is None:
            return runner.run(argv, env=full_env, timeout=timeout, check=check)
        return _run_streamed(argv, full_env, timeout, check, stdout_path, stdin_path)

    def attach_tool(self, tool: str, args: Sequence[str], *, env: dict[str, str] | None = None) -> int:
        return runner.attached([self.cluster.install.bin(tool), *args], env=runner.base_env(env), cwd=Path.cwd())

    def tool_command(self, tool: str, args: Sequence[str]) -> list[str]:
        return [self.cluster.install.bin(tool), *args]

    def backend_cpu_s(self, pids: Iterable[int]) -> float:
        import psutil

        total = 0.0
        for pid in pids:
            try:
                t = psutil.Process(pid).cpu_times()
                total += t.user + t.system
            except psutil.Error:
                continue
        return total


def _run_streamed(argv: list[str], env: dict[str, str] | None, timeout: float | None, check: bool,
                  stdout_path: Path | None, stdin_path: Path | None) -> runner.Completed:
    """``argv`` with its stdout written to / its stdin read from files (a dump streamed to the host)."""
    import subprocess

    t0 = time.monotonic()
    with open(stdin_path, "rb") if stdin_path else open(os.devnull, "rb") as fin, \
            open(stdout_path, "wb") if stdout_path else open(os.devnull, "wb") as fout:
        if stdout_path:
            os.chmod(stdout_path, 0o600)
        try:
            p = subprocess.run(argv, env=env, stdin=fin, stdout=fout if stdout_path else subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=timeout, check=False)
        except FileNotFoundError as e:
            raise CommandFailed(f"cannot run {argv[0]}: not found", argv=argv) from e
        except subprocess.TimeoutExpired as e:
            raise CommandFailed(f"{' '.join(argv[:3])}… timed out after {timeout}s", argv=argv) from e
    out = (p.stdout or b"").decode(errors="replace")
    err = p.stderr.decode(errors="replace")
    if check and p.returncode != 0:
        tail = (err or out).strip().splitlines()[-5:]
        raise CommandFailed(f"{' '.join(argv[:4])}… exited {p.returncode}: {' | '.join(tail)}", argv=argv,
                            returncode=p.returncode, stderr=err[-2000:])
    return runner.Completed(argv, p.returncode, out, err, time.monotonic() - t0)


def side_start_argv(install: pglib.PgInstall, data_dir: Path, port: int, socket_dir: Path, log: Path) -> list[str]:
    """Start a cluster copy on a side port, overriding the port/socket its config names."""
    return [install.bin("pg_ctl"), "start", "-D", str(data_dir), "-w", "-t", "60", "-l", str(log),
            "-o", f"-p {port} -k {socket_dir} -c listen_addresses=''"]


class LocalDataDir(PhysicalDataDir):
    def __init__(self, env: LocalEnvironment) -> None:
        self.env = env

    @property
    def path(self) -> Path:
        return self.env.cluster.data_dir

    def initialized(self) -> bool:
        return self.env.cluster.initialized()

    def running(self) -> bool:
        return self.env.cluster.running()

    def stop(self) -> float:
        return self.env.stop_database()

    def start(self) -> float:
        return self.env.start_database()

    def prepare(self) -> None:
        (self.env.dir / "pg").mkdir(parents=True, exist_ok=True)
        os.chmod(self.env.dir / "pg", 0o711)
        self.env.cluster.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def side_server(self, copy: Path) -> Iterator[Callable[[str], str]]:
        """Run the cluster in ``copy`` on a free port for reading; stop it after."""
        import tempfile

        live = self.env.cluster
        sock = Path(tempfile.mkdtemp(prefix="uinfra-side-"))
        os.chmod(sock, 0o700)
        if live.os_user:
            shutil.chown(sock, live.os_user, live.os_user)
        c = Cluster(live.install, copy, sock, free_port(), sock / "side.log", live.os_user)
        runner.run(side_start_argv(c.install, copy, c.port, sock, c.log_path), user=c.os_user, timeout=90)
        try:
            yield c.admin_conninfo
        finally:
            c.stop(mode="fast")
            shutil.rmtree(sock, ignore_errors=True)

    def reachable_dir(self, rel: Path) -> Path:
        """``<state>/<rel>``, a directory the server user can read (a quarantined data dir)."""
        return self.env.state.server_dir(rel, pglib.server_user())


class LocalServiceData(ServiceData):
    def __init__(self, env: LocalEnvironment) -> None:
        self.env = env

    def path(self, service: str) -> Path:
        return self.env.data_dir(service)


class LocalScratch(ScratchServers):
    """Scratch clusters of the PostgreSQL installs found on this machine, under ``<state>/scratch``."""

    def __init__(self, env: LocalEnvironment) -> None:
        self.env = env

    def available(self) -> list[ServerInfo]:
        installs = {i.major: i for i in reversed(pglib.find_installs())}  # first found wins per major
        return [ServerInfo(i.major, i.version, i.source) for _, i in sorted(installs.items())]

    @contextmanager
    def scratch(self, major: int) -> Iterator[Database]:
        import random

        install = pglib.choose_install(major)
        user = pglib.server_user()
        root = self.env.state.server_dir("scratch", user)  # reachable by the server user
        d = root / f"crossmajor-{install.major}-{os.getpid()}-{random.randrange(1 << 16):04x}"
        d.mkdir()
        os.chmod(d, 0o711)
        c = Cluster(install, d / "data", pglib.socket_dir_for(d), free_port(), d / "postgres.log", user)
        try:
            c.init()
            c.start()
            yield LocalDatabase(c)
        finally:
            try:
                c.stop(mode="immediate")
            finally:
                self.env.state.remove(d, ignore_errors=True)
                if not c.socket_dir.is_relative_to(d):
                    shutil.rmtree(c.socket_dir, ignore_errors=True)


@register_backend("local")
class LocalEnvironment(PortBlock, Environment):
    capabilities = frozenset({PhysicalDataDir, ServiceData, ScratchServers})
    _cluster: Cluster | None = None
    _database: LocalDatabase | None = None

    @classmethod
    def new_backend_state(cls, manifest: Manifest, state: StateDir, name: str, *, kind: str,
                          requested: dict[str, Any] | None = None) -> dict[str, Any]:
        """The port block (see :func:`upgrade_infra.backends.placement.new_port_base`)."""
        return {"port_base": new_port_base(manifest, state, name, requested)}

    def placement(self) -> dict[str, Any]:
        return {"port_base": self.port_base}

    def owned_paths(self) -> dict[str, Path]:
        return {"directory": self.dir, "socket dir": self.cluster.socket_dir,
                "PostgreSQL data dir": self.cluster.data_dir}

    def endpoint(self, service: str) -> Endpoint:
        return Endpoint(TOOL_HOST, self.ports[service])

    def service_address(self, service: str) -> Endpoint:
        return Endpoint(SERVICE_HOST, self.ports[service])

    def data_dir(self, service: str) -> Path:
        return self.state.checked(self.dir / "data" / service)  # a planted symlink cannot lead out

    def log_path(self, service: str) -> Path:
        return self.state.checked(self.dir / "logs" / f"{service}.log")

    def service_paths(self, service: str, version: str | None = None) -> dict[str, str]:
        ver = version or self.record.versions[service]
        return {"data_dir": str(self.data_dir(service)), "install_dir": str(self.state.installs_dir(service, ver)),
                "log_dir": str(self.dir / "logs")}

    @property
    def processes(self) -> dict[str, dict]:
        return self.backend_state.setdefault("processes", {})

    def _capability(self, cap):  # type: ignore[no-untyped-def]
        return {PhysicalDataDir: LocalDataDir, ServiceData: LocalServiceData, ScratchServers: LocalScratch}[cap](self)

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            install = pglib.choose_install(self.manifest.postgres.major)
            user = pglib.server_user()
            pglib.require_reachable(install, user)
            home = self.state.pg_home(self.name, user)  # envs/<env>/pg, or where it points
            self._cluster = Cluster(install=install, data_dir=home / "data",
                                    socket_dir=pglib.socket_dir_for(home.parent), port=self.ports[POSTGRES],
                                    log_path=home / "postgres.log", os_user=user)
        return self._cluster

    @property
    def database(self) -> LocalDatabase:
        if self._database is None:
            self._database = LocalDatabase(self.cluster)
        return self._database

    # -- database ---------------------------------------------------------------------------------
    def provision_database(self) -> bool:
        """Create the cluster, roles and databases if missing. Returns True when newly created."""
        c = self.cluster
        created = False
        if not c.initialized():
            # envs/<env>/pg made 0711 all the way (or in the state's base): the server user reaches data/ and run/
            self.state.server_dir(Path("envs") / self.name / "pg", c.os_user)
            c.init(self.manifest.postgres.settings)
            created = True
        self.start_database()
        self.ensure_roles_and_databases()
        return created

    def database_exists(self) -> bool:
        return self.cluster.initialized()

    def database_running(self) -> bool:
        return self.cluster.initialized() and self.cluster.running()

    def start_database(self) -> float:
        self.cluster.write_conf(self.manifest.postgres.settings)
        return self.cluster.start()

    def stop_database(self) -> float:
        return self.cluster.stop()

    # -- services ---------------------------------------------------------------------------------
    def _version_parts(self, service: str, version: str) -> tuple[str, str | None, dict[str, str]]:
        spec = self.manifest.service(service)
        vs = self.manifest.version_of(service, version)
        return vs.command or spec.command, vs.install or spec.install, {**spec.env, **vs.env}

    def ensure_installed(self, service: str, version: str) -> Path:
        _, install, _ = self._version_parts(service, version)
        target = self.state.installs_dir(service, version)
        ctx = self.service_context(service, version)
        argv = templates.build_argv(install, ctx) if install else []
        digest = hashlib.sha256("\0".join(argv).encode()).hexdigest()
        marker = target / INSTALL_MARKER
        if marker.exists() and marker.read_text() == digest:
            return target
        if target.exists() or target.is_symlink():
            self.state.remove(target)
        target.mkdir(parents=True, mode=0o700)
        if argv:
            try:
                runner.run(argv, env=runner.base_env(), cwd=self.manifest.stack_dir, timeout=900)
            except CommandFailed:
                self.state.remove(target, ignore_errors=True)
                raise
        marker.write_text(digest)
        return target

    def _runtime(self, service: str, version: str | None = None, **extra: Any) -> tuple[list[str], dict, Path]:
        ver = version or self.record.versions[service]
        command, _, env = self._version_parts(service, ver)
        ctx = self.service_context(service, ver, **extra)
        overrides = self.manifest.staging.overrides.get(service, {}) if self.kind == "staging" else {}
        full_env = runner.base_env(templates.render_env({**env, **overrides}, ctx))
        cwd = Path(templates.render(self.manifest.service(service).cwd or "{stack_dir}", ctx))
        return templates.build_argv(command, ctx), full_env, cwd

    def _handle(self, service: str) -> runner.ProcessHandle | None:
        d = self.processes.get(service)
        return runner.ProcessHandle.from_dict(d) if d else None

    def start_services(self, names: list[str] | None = None, *, wait: bool = True,
                       port_wait_s: float = 0.0) -> dict[str, float]:
        """Start the services not running yet, in dependency order. ``port_wait_s``: how long a port
        still held (e.g. by a process of this environment that is still closing) may be waited for."""
        order = [n for n in self.manifest.start_order() if names is None or n in names]
        timings: dict[str, float] = {}
        mine = {n for n in order if (h := self._handle(n)) and h.alive()}
        wanted = {n: self.ports[n] for n in order if n not in mine}
        if port_wait_s:
            wait_free(wanted, port_wait_s)
        check_free(wanted, self.name)
        for n in order:
            if n in mine:
                continue
            t0 = time.monotonic()
            self.ensure_installed(n, self.record.versions[n])
            self.data_dir(n).mkdir(parents=True, exist_ok=True, mode=0o700)
            argv, env, cwd = self._runtime(n)
            private_file(self.log_path(n))  # service output can hold live tokens
            user = self._service_user(n, argv, cwd)
            handle = runner.spawn(argv, env=env, cwd=cwd, log_path=self.log_path(n), user=user)
            self.processes[n] = handle.to_dict()
            self.save()
            if wait:
                self.wait_ready(n)
            timings[n] = time.monotonic() - t0
        return timings

    def _service_user(self, service: str, argv: list[str], cwd: Path) -> str | None:
        """Staging services run as an unprivileged user (defence in depth: it cannot reach production's
        socket dir, data dirs, secrets or logs). Its install is shared read-only with that user's group
        and its data dir handed to it. None (run as ourselves) for production, or when not root."""
        user = staging_user() if self.kind == "staging" else None
        if user is None:
            return None
        pw = pwd.getpwnam(user)
        install = self.state.installs_dir(service, self.record.versions[service])
        if install.is_dir():
            share_with_group(install, pw.pw_gid, self.state.root / "installs")
        exe = shutil.which(argv[0]) if argv else None
        paths = [Path(a) for a in [exe or "", *argv[1:]] if os.path.isabs(a) and os.path.exists(a)]
        blocked = next(((p, b) for p in [*paths, cwd] if (b := unreachable_for(p, user))), None)
        if blocked:
            log.warning("staging service %s of %s runs as root, without the unprivileged user %r: it cannot "
                        "reach %s (blocked at %s); install the program (e.g. the Python venv) where other users "
                        "can traverse", service, self.name, user, blocked[0], blocked[1])
            return None
        data = self.data_dir(service)
        os.chmod(data.parent, TRAVERSE)
        for dirpath, dirnames, filenames in os.walk(data):
            for name in [dirpath, *(os.path.join(dirpath, f) for f in filenames + dirnames)]:
                os.lchown(name, pw.pw_uid, pw.pw_gid)
        return user

    def wait_ready(self, service: str) -> float:
        spec = self.manifest.service(service)
        p = spec.readiness or spec.health
        timeout = p.timeout_s or self.manifest.policies.readiness_timeout_s
        handle = self._handle(service)

        def died() -> str | None:
            return None if handle and handle.alive() else "process exited"

        result, waited = health.wait_for(lambda: self.probe(service), timeout, abort=died)
        if not result.ok:
            tail = " | ".join(self.log_tail(service, 8))
            raise ServiceNotReady(f"{service} ({self.record.versions[service]}) in {self.name} not ready after "
                                  f"{waited:.1f}s: {result.detail}. Last log lines: {tail}",
                                  fix=f"see {self.log_path(service)}", service=service)
        return waited

    def probe(self, service: str) -> health.ProbeResult:
        """One readiness probe: the http/command probe, then the declared readiness check (if any)."""
        spec = self.manifest.service(service)
        p = spec.readiness or spec.health
        if p.http or p.command:
            res = self._probe(service, p)
            if not res.ok or not p.check:
                return res
        return self._readiness_check(p.check) if p.check else health.ProbeResult(False, "nothing to probe", 0.0)

    def _readiness_check(self, name: str) -> health.ProbeResult:
        if self.readiness_check is None:
            return health.ProbeResult(False, f"check {name!r}: no check runner was given to this environment "
                                             "(open it through a session)", 0.0)
        return self.readiness_check(self, name)

    def _probe(self, service: str, p) -> health.ProbeResult:
        argv = env = None
        if p.command:
            ctx = self.service_context(service)
            argv, env = templates.build_argv(p.command, ctx), runner.base_env()
        return health.probe(p, self.service_url(service), argv, env)

    def log_tail(self, service: str, n: int = 10) -> list[str]:
        try:
            return self.log_path(service).read_text(errors="replace").strip().splitlines()[-n:]
        except OSError:
            return []

    def stop_services(self, names: list[str] | None = None) -> dict[str, str]:
        order = [n for n in reversed(self.manifest.start_order()) if names is None or n in names]
        running = {n: h for n in order if (h := self._handle(n))}
        timeout = self.manifest.policies.stop_timeout_s
        how = runner.stop_processes(list(running.values()), timeout)
        out = {n: "not running" for n in order} | dict(zip(running, how, strict=True))
        for n in order:
            self.processes.pop(n, None)
        self.save()
        # stopped means its ports are free too: a process may close its listening socket after its
        # main process exited (a thread or a child still holding it)
        stopped = {n: self.ports[n] for n, h in zip(running, how, strict=True) if h != "not running"}
        busy = wait_free(stopped, timeout) if stopped else {}
        if busy:
            raise ServiceStillRunning(
                f"{', '.join(busy)} in {self.name} stopped but not released after {timeout:g}s: "
                + "; ".join(f"{n}: {why}" for n, why in busy.items()),
                fix="stop the process named, or raise policies.stop_timeout_s", busy=busy)
        return out

    def job_runtime(self, service: str, version: str | None = None,
                    **extra: Any) -> tuple[dict[str, str], Path, dict[str, Any]]:
        """(env vars, cwd, template context) of ``service`` at ``version`` (default: the environment's),
        its release installed first and its data dir made."""
        self.manifest.service(service)
        ver = version or self.record.versions[service]
        self.manifest.version_of(service, ver)
        self.ensure_installed(service, ver)
        self.data_dir(service).mkdir(parents=True, exist_ok=True, mode=0o700)
        _, full_env, cwd = self._runtime(service, ver, **extra)
        return full_env, cwd, self.service_context(service, ver, **extra)

    def run_job(self, service: str, job: str | Sequence[str], version: str | None = None,
                timeout: float | None = None, *, env: dict[str, str] | None = None, cwd: str | None = None,
                **context: Any) -> runner.Completed:
        """Run a service's declared ``migrate``/``downgrade``/``sql`` command (``job`` names it), or an
        argv template (e.g. a seed), as a process with the service's env, cwd and installed version."""
        if isinstance(job, str):
            template = getattr(self.manifest.service(service), job)
            if not template:
                raise CommandFailed(f"service {service!r} declares no {job} command",
                                    fix=f"add services.{service}.{job} to the manifest")
        full_env, wd, ctx = self.job_runtime(service, version, **context)
        argv = (templates.build_argv(template, ctx) if isinstance(job, str)
                else [templates.render(a, ctx) for a in job])
        if cwd:
            wd = Path(templates.render(cwd, ctx))
        if env:
            full_env = {**full_env, **templates.render_env(env, ctx)}
        return runner.run(argv, env=full_env, cwd=wd, timeout=timeout, check=False)

    def exec_attached(self, service: str, argv: Sequence[str], version: str | None = None) -> int:
        from upgrade_infra.backends.access import exec_env

        base, cwd, ctx = self.job_runtime(service, version)
        return runner.attached(list(argv), env=exec_env(base, ctx), cwd=cwd)

    # -- lifecycle --------------------------------------------------------------------------------
    def up(self, *, seed: bool = True, seed_mb: float | None = None) -> dict[str, Any]:
        t0 = time.monotonic()
        self.state.ensure()
        first = self._first_up()  # a first `env up` that fails leaves nothing behind: no record, no half-made cluster
        self.port_base  # noqa: B018 - a record made without a port block gets the manifest's
        self.cluster  # noqa: B018 - says at once when PostgreSQL's user cannot reach its files
        self.save()
        with first:
            if not self.cluster.running():
                check_free({POSTGRES: self.ports[POSTGRES]}, self.name)
            created = self.provision_database()
            t_db = time.monotonic() - t0
            from upgrade_infra.backends.seed import before_start, run_seed

            seeding = (seed and created and self.manifest.seed and self.kind == "production"
                       and not self.record.seeded)
            seeded = run_seed(self, seed_mb) if seeding and before_start(self) else None  # a service's one-off job
            timings = self.start_services()
            if seeding and seeded is None:
                seeded = run_seed(self, seed_mb)
        return EnvUp(self.name, created, round(t_db, 3), {k: round(v, 3) for k, v in timings.items()},
                     round(time.monotonic() - t0, 3), seeded)

    def down(self) -> dict[str, Any]:
        t0 = time.monotonic()
        stopped = self.stop_services()
        pg = self.stop_database() if self.cluster.initialized() else 0.0
        return EnvDown(self.name, stopped, round(pg, 3), round(time.monotonic() - t0, 3))

    def status(self, probe: bool = True) -> EnvStatus:
        c = self.cluster
        running = c.initialized() and c.running()
        st = EnvStatus(self.name, self.kind, self.backend_name,
                       {"running": running, "port": c.port, "major": c.install.major, "data_dir": str(c.data_dir)})
        if running:
            self._database_sizes(st)
        for n in self.manifest.start_order():
            h = self._handle(n)
            alive = bool(h and h.alive())
            res = self._probe(n, self.manifest.service(n).health) if (alive and probe) else None
            st.services.append(ServiceStatus(n, self.record.versions[n], self.ports[n], alive,
                                             bool(res and res.ok), res.detail if res else
                                             ("running" if alive else "stopped"), h.pid if h and alive else None))
        return st

    def _discard_first_up(self) -> None:
        try:
            self.down()
        except Exception:  # noqa: BLE001 - best effort: the cluster may never have started
            pass
        self._remove_cluster_home()

    def _remove_cluster_home(self) -> None:
        """The cluster's home where it lives outside the environment's directory (in the base) and its
        socket dir outside the state dir; the environment's directory itself goes after."""
        sock = self.cluster.socket_dir
        self.state.remove_pg_home(self.name)  # the cluster's home in the base, when it lives there
        if not self.state.owns(sock):
            shutil.rmtree(sock, ignore_errors=True)

    def destroy(self) -> None:
        try:
            self.down()
        except ServiceStillRunning:  # its processes are gone; a port some other process holds is no reason to keep the env
            if self.cluster.initialized():
                self.stop_database()
        self._remove_cluster_home()
        self.state.remove(self.dir, ignore_errors=True)
        self.state.remove(self.state.secrets_dir(self.name), ignore_errors=True)
