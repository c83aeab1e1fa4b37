"""The backend-neutral environment interface.

An environment is one running copy of the stack: its own PostgreSQL server, services at given
versions. Orchestration (restore points, upgrades, staging, validation) talks only to this interface;
backends (``local``, next ``compose``) implement it. What a backend provides:

- a :class:`Database` handle (``env.database``): the tool's admin connection per database, the
  server's major, where the tool reaches the server and where the services do, and the PostgreSQL
  client tools of that major wherever they live (:meth:`Database.run_tool`);
- endpoints: :meth:`Environment.endpoint` (where the tool reaches a service) apart from
  :meth:`Environment.service_address` (what services use to reach each other, the template
  context's ``{services.X.url}``) and :meth:`Environment.listen_address` (a service's own
  ``{host}``/``{port}``);
- ``probe``, ``wait_ready``, ``log_tail`` and ``run_job`` (one-off commands of a service's version);
- optional capabilities (:class:`Capability`), declared in ``capabilities`` and obtained with
  :meth:`Environment.capability`; restore-point strategies and sync methods name the ones they need
  in ``requires`` and :func:`require` refuses (exit 2) on a backend without them;
- an opaque ``record.backend_state`` only the backend reads and writes.

Template contexts are built here, so every backend renders the manifest the same way.
"""

from __future__ import annotations

import functools
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from upgrade_infra.core import runner
from upgrade_infra.core.errors import BadInput
from upgrade_infra.core.state import EnvRecord, StateDir
from upgrade_infra.stack import secrets as secretlib
from upgrade_infra.stack.manifest import Manifest

if TYPE_CHECKING:
    from upgrade_infra.backends.health import ProbeResult

#: a readiness ``check:`` runner injected by the layer that opens environments (validation is above
#: backends): ``(env, check_name) -> ProbeResult``
ReadinessCheck = Callable[["Environment", str], "ProbeResult"]


# -- addresses ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Endpoint:
    """A host and port; ``url`` with the scheme (``http`` for services)."""

    host: str
    port: int
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


@dataclass(frozen=True)
class HostPath:
    """A path on the tool's host inside a client tool's argv (:meth:`Database.run_tool`).

    ``mode``: ``"r"`` the tool reads it (e.g. ``pg_restore``'s dump dir), ``"w"`` the tool writes it
    (``pg_dump -Fd -f DIR``). A backend whose tools run elsewhere (``docker exec``) maps it: copy in
    before, copy out after. The local backend passes ``str(path)``.
    """

    path: Path
    mode: str = "r"

    def __str__(self) -> str:
        return str(self.path)


ToolArg = str | HostPath


# -- the database handle -----------------------------------------------------------------------------
class Database(ABC):
    """An environment's PostgreSQL server, as the tool uses it."""

    @property
    @abstractmethod
    def major(self) -> int:
        """The server's major version (the client tools of :meth:`run_tool` are of this major)."""

    @property
    def version(self) -> str:
        return str(self.major)

    @abstractmethod
    def conninfo(self, db: str = "postgres") -> str:
        """The tool's superuser connection to database ``db`` (from the tool's host)."""

    def tool_conninfo(self, db: str = "postgres") -> str:
        """The superuser connection for the client tools :meth:`run_tool` runs (they may run inside
        the database's container, where the server has another address). Default: :meth:`conninfo`."""
        return self.conninfo(db)

    @abstractmethod
    def endpoint(self) -> Endpoint:
        """Where the tool reaches the server."""

    def service_endpoint(self) -> Endpoint:
        """Where the services reach the server (``{db.NAME.host}``/``{db.NAME.port}``). Default: :meth:`endpoint`."""
        return self.endpoint()

    @abstractmethod
    def run_tool(self, tool: str, args: Sequence[ToolArg], *, stdout_path: Path | None = None,
                 stdin_path: Path | None = None, env: dict[str, str] | None = None,
                 timeout: float | None = None, check: bool = True) -> runner.Completed:
        """Run client tool ``tool`` (``pg_dump``, ``pg_restore``, ``psql``…) of the server's major.

        ``args`` take connection strings from :meth:`tool_conninfo` and host paths as :class:`HostPath`;
        ``stdout_path``/``stdin_path`` stream the tool's output to / input from a file on the host;
        ``env`` adds variables (e.g. ``PGOPTIONS``)."""

    @abstractmethod
    def attach_tool(self, tool: str, args: Sequence[str], *, env: dict[str, str] | None = None) -> int:
        """Run ``tool`` attached to the caller's terminal (``db --psql``); its exit code."""

    def tool_command(self, tool: str, args: Sequence[str]) -> list[str]:
        """The argv a person runs on the tool's host to use ``tool`` (printed, e.g. the quarantine's
        export commands). Default: the bare tool name."""
        return [tool, *args]

    def backend_cpu_s(self, pids: Iterable[int]) -> float:
        """CPU seconds used so far by these server backends (0 where the backend cannot see them)."""
        return 0.0


# -- capabilities ------------------------------------------------------------------------------------
class Capability(ABC):  # noqa: B024 - a marker base: subclasses define the calls
    """Something a backend may or may not offer. Subclasses name it (``title``) and define the calls."""

    title: ClassVar[str] = "?"


class PhysicalDataDir(Capability):
    """The PostgreSQL data directory as files on the tool's host (``fs``/``cow`` restore points,
    ``physical``/``cow`` staging sync)."""

    title = "physical PostgreSQL data directory"

    #: files of a running server that a copy of the directory must not carry
    SERVER_FILES: ClassVar[tuple[str, ...]] = ("postmaster.pid", "postmaster.opts")

    @property
    @abstractmethod
    def path(self) -> Path:
        """The live data directory (renamed away and back by swaps while the server is stopped)."""

    def clean_copy(self, copy: Path) -> None:
        """Make a copy of a data directory startable on its own (drop the running server's files)."""
        for name in self.SERVER_FILES:
            (copy / name).unlink(missing_ok=True)

    @abstractmethod
    def initialized(self) -> bool:
        """Whether the data directory holds a cluster."""

    @abstractmethod
    def running(self) -> bool:
        """Whether the server of this data directory runs."""

    @abstractmethod
    def stop(self) -> float:
        """Stop the server (seconds taken; 0 when it was not running)."""

    @abstractmethod
    def start(self) -> float:
        """Start the server on the live data directory (seconds taken)."""

    @abstractmethod
    def prepare(self) -> None:
        """Make the data directory's parents (reachable by the server) before a copy is placed there."""

    @abstractmethod
    def side_server(self, copy: Path) -> AbstractContextManager[Callable[[str], str]]:
        """Run a copy of a data directory on a side address for reading; yields ``conninfo(db)``.
        Stopped when the context ends."""

    @abstractmethod
    def reachable_dir(self, rel: Path) -> Path:
        """``<state>/<rel>`` made as a directory the server can read (a quarantined data dir)."""


class ServiceData(Capability):
    """The services' persistent data as directories on the tool's host (local folders; a named
    volume's mount point next). Restore points copy them; rollbacks swap them by rename."""

    title = "service data on the host"

    @abstractmethod
    def path(self, service: str) -> Path:
        """Where ``service``'s live data is on the tool's host."""

    def on_host(self, service: str) -> bool:
        """Whether ``service``'s data is a directory on the tool's host at all (an adopted Compose
        project keeps it in the engine's volumes only: :class:`EngineVolumes`). Default: True."""
        return True


class EngineVolumes(Capability):
    """Service data held in a container engine's named volumes (no host path): restore points copy each
    volume into a restore-point volume through a short-lived helper container, and rollbacks copy it back
    into the live volume, whose name never changes (the user's names stay the user's)."""

    title = "service data in engine volumes"

    @abstractmethod
    def live(self) -> dict[str, str]:
        """The volumes restore points capture: logical name (``assistant-data``) -> live volume name."""

    @abstractmethod
    def snapshot(self, source: str, target: str, labels: dict[str, str]) -> int:
        """Copy every file of volume ``source`` into the new volume ``target`` (made with ``labels``);
        the bytes copied."""

    @abstractmethod
    def copy_back(self, source: str, target: str) -> int:
        """Replace the contents of volume ``target`` with those of ``source`` (the service is stopped)."""

    @abstractmethod
    def exists(self, name: str) -> bool: ...

    @abstractmethod
    def remove(self, name: str) -> None:
        """Remove a volume (no error when it is gone)."""

    @abstractmethod
    def labelled(self, label: str, value: str) -> list[str]:
        """Names of the volumes carrying ``label=value`` (a half-made restore point's, to clean up)."""


@dataclass(frozen=True)
class ServerInfo:
    major: int
    version: str
    source: str


class ScratchServers(Capability):
    """Throwaway PostgreSQL servers of other majors (``migrate cross-major``)."""

    title = "scratch PostgreSQL servers of other majors"

    @abstractmethod
    def available(self) -> list[ServerInfo]:
        """The majors a scratch server can be made of."""

    @abstractmethod
    def scratch(self, major: int) -> AbstractContextManager[Database]:
        """A fresh, empty server of ``major``, stopped and removed when the context ends."""


class ServerVolumes(Capability):
    """The PostgreSQL server as a container image plus a data volume, both switchable: a major upgrade
    loads a new server of another image into a new volume beside the live one, then switches; the old
    volume and image stay as the way back (``pg-volume`` restore points, ``upgrade ENV --postgres``).
    A server is described by a dict: ``volume``, ``image``, ``image_id``, ``major``."""

    title = "PostgreSQL servers in switchable volumes (side-by-side major upgrades)"

    @abstractmethod
    def current(self) -> dict[str, Any]:
        """The live server: volume, image, image_id, major."""

    @abstractmethod
    def resolve_image(self, target: str) -> str:
        """The image reference of ``target``: a major (``"16"``: the live image's repository at that tag)
        or an image reference as given."""

    @abstractmethod
    def probe_image(self, image: str) -> dict[str, Any]:
        """A short-lived server of ``image``: its ``major``, ``image_id`` and ``extensions`` (name ->
        default version, from ``pg_available_extensions``). The image must exist locally."""

    @abstractmethod
    def free_bytes(self) -> tuple[int, str] | None:
        """Free bytes where new volumes are written, and that place (None when not visible from here)."""

    @abstractmethod
    def planned(self, op: str) -> dict[str, Any]:
        """The names (``volume``, ``container``) :meth:`create_server` uses for operation ``op``."""

    @abstractmethod
    def create_server(self, op: str, image: str) -> dict[str, Any]:
        """A new, empty server of ``image`` in a new volume, beside the live one (idempotent per ``op``)."""

    @abstractmethod
    def load(self, server: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Copy every database and role of the live server into ``server`` (logical, with ``server``'s
        client tools, streamed); what it did and how long it took."""

    @abstractmethod
    def remove_server(self, server: dict[str, Any], *, volume: bool = True) -> None:
        """Remove the side container of ``server`` (and its volume with ``volume``); missing is fine."""

    @abstractmethod
    def switch(self, server: dict[str, Any]) -> dict[str, Any]:
        """Make ``server`` the environment's server (stops the live one, starts it on the published
        port); returns the server it replaced. Idempotent."""

    @abstractmethod
    def problems(self, server: dict[str, Any]) -> list[str]:
        """Why ``server`` could not be switched to (volume or image gone); [] when it can."""

    @abstractmethod
    def side_server(self, server: dict[str, Any]) -> AbstractContextManager[Callable[[str], str]]:
        """Run ``server`` (not the live one) for reading; yields ``conninfo(db)``; removed at the end."""

    @abstractmethod
    def remove_volume(self, volume: str) -> bool:
        """Delete a volume that is not live (a quarantined server's); False when it did not exist."""


C = TypeVar("C", bound=Capability)


class MissingCapability(BadInput):
    """A strategy or sync method needs a capability the environment's backend does not have (exit 2)."""


def require(env: Environment, user: Any, *, kind: str | None = None) -> None:
    """Refuse ``user`` (a restore-point strategy or sync method with ``requires``, ``name`` and
    ``alternative``) on ``env`` when its backend lacks one of the capabilities it needs."""
    missing = [c for c in getattr(user, "requires", ()) if not env.has(c)]
    if not missing:
        return
    kind = kind or getattr(user, "kind", "strategy")
    alt = getattr(user, "alternative", None)
    name = getattr(user, "name", type(user).__name__)
    raise MissingCapability(
        f"the {kind} {name!r} needs {', '.join(c.title for c in missing)}, which the {env.backend_name!r} backend "
        f"of environment {env.name!r} does not offer",
        fix=f"use {alt!r} instead" if alt else "choose another one", strategy=name, backend=env.backend_name,
        alternative=alt, missing=[c.__name__ for c in missing])


# -- status ------------------------------------------------------------------------------------------
@dataclass
class ServiceStatus:
    name: str
    version: str
    port: int
    running: bool
    healthy: bool
    detail: str = ""
    pid: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EnvStatus:
    name: str
    kind: str
    backend: str
    postgres: dict[str, Any]
    services: list[ServiceStatus] = field(default_factory=list)
    databases: dict[str, int] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return bool(self.postgres.get("running")) and all(s.healthy for s in self.services)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["healthy"] = self.healthy
        return d


def _guarded(verb: str, fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """``up``/``down`` of every backend run under the environment's lock and refuse a half-done
    environment (open journal: `upgrade-infra resume`). ``ignore_open=True`` (teardown only) still
    takes the lock but stops an environment whatever its journal says."""
    @functools.wraps(fn)
    def wrapper(self: Environment, *args: Any, ignore_open: bool = False, **kw: Any) -> dict[str, Any]:
        from upgrade_infra.core.lock import guard

        with guard(self.state, self.name, f"env {verb} {self.name}", allow_open=ignore_open):
            return fn(self, *args, **kw)

    wrapper.__guarded__ = True  # type: ignore[attr-defined]
    return wrapper


class Environment(ABC):
    backend_name: ClassVar[str] = "?"
    #: the optional capabilities this backend offers (see :meth:`capability`)
    capabilities: ClassVar[frozenset[type[Capability]]] = frozenset()

    def __init_subclass__(cls, **kw: Any) -> None:
        """One lock discipline for every backend: its ``up`` and ``down`` are wrapped by :func:`_guarded`."""
        super().__init_subclass__(**kw)
        for verb in ("up", "down"):
            fn = cls.__dict__.get(verb)
            if fn is not None and not getattr(fn, "__isabstractmethod__", False) and not hasattr(fn, "__guarded__"):
                setattr(cls, verb, _guarded(verb, fn))

    def __init__(self, manifest: Manifest, state: StateDir, record: EnvRecord, *,
                 readiness_check: ReadinessCheck | None = None) -> None:
        self.manifest = manifest
        self.state = state
        self.record = record
        self.readiness_check = readiness_check

    # -- identity (shared) ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.record.name

    @property
    def kind(self) -> str:
        return self.record.kind

    @property
    def dir(self) -> Path:
        """The environment's own directory in the state dir (record, reports, journal)."""
        return self.state.env_dir(self.name)

    @property
    def backend_state(self) -> dict[str, Any]:
        """What the backend keeps about this environment (opaque to everything else)."""
        return self.record.backend_state

    def save(self) -> None:
        self.state.save_record(self.record)

    # -- capabilities -----------------------------------------------------------------------------
    @classmethod
    def has(cls, cap: type[Capability]) -> bool:
        return cap in cls.capabilities

    def capability(self, cap: type[C]) -> C:
        """The backend's implementation of ``cap``; :class:`MissingCapability` when it has none."""
        if not self.has(cap):
            raise MissingCapability(f"the {self.backend_name!r} backend of environment {self.name!r} does not offer "
                                    f"{cap.title}", fix="use a strategy or method that works on any backend",
                                    backend=self.backend_name, missing=cap.__name__)
        return self._capability(cap)

    def _capability(self, cap: type[C]) -> C:
        raise NotImplementedError(cap)

    # -- endpoints --------------------------------------------------------------------------------
    @property
    @abstractmethod
    def ports(self) -> dict[str, int]:
        """The ports this environment takes on the tool's host, by service (and ``postgres``)."""

    @abstractmethod
    def endpoint(self, service: str) -> Endpoint:
        """Where the tool reaches ``service`` (probes, checks, OpenAPI)."""

    def service_address(self, service: str) -> Endpoint:
        """Where the other services reach ``service`` (``{services.NAME.url}``). Default: :meth:`endpoint`."""
        return self.endpoint(service)

    def listen_address(self, service: str) -> Endpoint:
        """The address ``service`` binds (its ``{host}``/``{port}``). Default: :meth:`service_address`."""
        return self.service_address(service)

    def service_url(self, service: str) -> str:
        """The tool's URL of ``service``."""
        return self.endpoint(service).url

    # -- template context (shared by all backends) ------------------------------------------------
    def secrets(self) -> dict[str, str]:
        return secretlib.resolve(self.manifest, self.state, self.name, kind=self.kind, source_env=self.record.source)

    def db_info(self, view: str = "services") -> dict[str, dict[str, Any]]:
        """Per database: name, user, password, host, port, url; as the services see the server
        (``view="services"``) or as the tool does (``view="tool"``)."""
        ep = self.database.service_endpoint() if view == "services" else self.database.endpoint()
        out = {}
        for db in self.manifest.postgres.databases:
            pw = secretlib.db_password(self.state, self.name, db)
            out[db] = {"name": db, "user": db, "password": pw, "host": ep.host, "port": ep.port,
                       "url": f"postgresql://{db}:{pw}@{ep.host}:{ep.port}/{db}"}
        return out

    @abstractmethod
    def service_paths(self, service: str, version: str | None = None) -> dict[str, str]:
        """``data_dir``, ``install_dir`` and ``log_dir`` of ``service`` as the service sees them."""

    def base_context(self, view: str = "services") -> dict[str, Any]:
        """The context every template renders with; ``view="tool"`` for commands the tool runs on its
        own host (a plain seed), where addresses are the tool's."""
        addr = self.service_address if view == "services" else self.endpoint
        services = {n: addr(n) for n in self.manifest.services}
        return {
            "python": sys.executable, "stack_dir": str(self.manifest.stack_dir), "state_dir": str(self.state.root),
            "env": self.name, "db": self.db_info(view), "secrets": self.secrets(),
            "services": {n: {"url": e.url, "port": e.port, "host": e.host} for n, e in services.items()},
            "data_dirs": {n: self.service_paths(n)["data_dir"] for n, s in self.manifest.services.items()
                          if s.data_dir},
        }

    def service_context(self, service: str, version: str | None = None, **extra: Any) -> dict[str, Any]:
        ver = version or self.record.versions[service]
        ctx = self.base_context()
        own = self.listen_address(service)
        ctx.update(version=ver, port=own.port, host=own.host, **self.service_paths(service, ver),
                   to_version=ver, from_version=ver)
        ctx.update(extra)
        return ctx

    def conninfo(self, db: str = "postgres") -> str:
        """Superuser connection to this environment's server (the tool's own access)."""
        return self.database.conninfo(db)

    # -- what a backend implements -------------------------------------------------------------
    @property
    @abstractmethod
    def database(self) -> Database: ...

    @abstractmethod
    def up(self, *, seed: bool = True, seed_mb: float | None = None) -> dict[str, Any]: ...

    @abstractmethod
    def down(self) -> dict[str, Any]: ...

    @abstractmethod
    def status(self, probe: bool = True) -> EnvStatus: ...

    def _database_sizes(self, st: EnvStatus) -> None:
        """Into ``st`` (of a running server): the live databases' sizes and the bytes the server keeps
        besides them (restore-point clones, spares and quarantines live in the same server); an error is
        reported in it, never raised (status never fails)."""
        from upgrade_infra.core import sql

        try:
            sizes = sql.database_sizes(self.conninfo())
            live = self.manifest.postgres.databases
            st.databases = {k: v for k, v in sizes.items() if k in live}
            st.postgres["kept_databases_bytes"] = sum(v for k, v in sizes.items() if k not in live and k != "postgres")
        except Exception as e:  # noqa: BLE001 - status reports, never fails
            st.postgres["error"] = str(e)

    @abstractmethod
    def provision_database(self) -> bool:
        """Create the server, roles and databases if missing (and start it); True when newly created."""

    def ensure_roles_and_databases(self) -> None:
        """On the running server: each database's role, created or given the environment's password,
        and the database owned by it where missing (the common part of :meth:`provision_database`)."""
        from upgrade_infra.core import sql

        admin = self.conninfo()
        for db, info in self.db_info().items():
            if not sql.exists(admin, sql.ROLE_EXISTS, info["user"]):
                sql.execute(admin, sql.create_role(info["user"], info["password"]))
            else:
                sql.execute(admin, sql.alter_role_password(info["user"], info["password"]))
            if not sql.exists(admin, sql.DATABASE_EXISTS, db):
                sql.execute(admin, sql.create_database(db, owner=info["user"]))

    @abstractmethod
    def database_exists(self) -> bool:
        """Whether the server has been created (it may be stopped)."""

    @abstractmethod
    def database_running(self) -> bool:
        """Whether the server exists and accepts connections."""

    @abstractmethod
    def start_database(self) -> float: ...

    @abstractmethod
    def stop_database(self) -> float: ...

    @abstractmethod
    def start_services(self, names: list[str] | None = None, *, wait: bool = True,
                       port_wait_s: float = 0.0) -> dict[str, float]: ...

    @abstractmethod
    def stop_services(self, names: list[str] | None = None) -> dict[str, str]: ...

    def check_runnable(self, versions: dict[str, str], images: dict[str, str] | None = None) -> None:
        """Refuse (``BadInput``), before an operation changes anything, what this backend cannot run:
        ``versions`` (service -> version) and, for container backends, the image IDs a restore point
        recorded (``images``). Compose: the engine answers, the Compose file is valid, every image is on
        the engine (pulled first when ``compose.pull`` allows). Default: nothing to check."""
        return None

    @abstractmethod
    def probe(self, service: str) -> ProbeResult:
        """One readiness probe of ``service`` (its http/command probe, then its readiness ``check:``)."""

    @abstractmethod
    def wait_ready(self, service: str) -> float:
        """Wait until ``service`` is ready (seconds waited); ``ServiceNotReady`` with its last log lines."""

    @abstractmethod
    def log_tail(self, service: str, n: int = 10) -> list[str]: ...

    @abstractmethod
    def run_job(self, service: str, job: str | Sequence[str], version: str | None = None,
                timeout: float | None = None, *, env: dict[str, str] | None = None, cwd: str | None = None,
                **context: Any) -> runner.Completed:
        """Run a one-off command of ``service`` at ``version`` (its env, install, data) and wait.

        ``job``: the name of a command the service declares (``migrate``, ``downgrade``, ``sql``) or an
        argv template rendered with the service's context (plus ``context``), e.g. a seed. ``env`` adds
        (rendered) variables and ``cwd`` is a template for the working directory."""

    @abstractmethod
    def exec_attached(self, service: str, argv: Sequence[str], version: str | None = None) -> int:
        """Run ``argv`` attached to the terminal with ``service``'s settings (``exec``); its exit code."""

    @abstractmethod
    def destroy(self) -> None: ...

    @classmethod
    @abstractmethod
    def new_backend_state(cls, manifest: Manifest, state: StateDir, name: str, *, kind: str,
                          requested: dict[str, Any] | None = None) -> dict[str, Any]:
        """``backend_state`` for a new environment ``name`` (e.g. a free port block for ``local``);
        ``requested`` carries what the user asked for (``--port-base``)."""

    # -- a first ``up`` that fails (shared) ----------------------------------------------------------
    def _first_up(self) -> FirstUp:
        """Taken in ``up`` before anything is created; ``with`` it around what creates things."""
        return FirstUp(self)

    def _undo_first_up(self, had_secrets: bool) -> None:
        """A first ``up`` that failed leaves nothing behind: what the backend made, the environment's
        directory (its record with it) and the secrets it generated."""
        self._discard_first_up()
        self.state.remove(self.dir, ignore_errors=True)
        if not had_secrets:
            self.state.remove(self.state.secrets_dir(self.name), ignore_errors=True)

    @abstractmethod
    def _discard_first_up(self) -> None:
        """What the backend made for a first ``up`` that failed (best effort; its directory goes after)."""

    def owned_paths(self) -> dict[str, Path]:
        """Host paths that are this environment's alone, by label (isolation checks that no other
        environment's overlap and that no staging setting names them)."""
        return {"directory": self.dir}

    def placement(self) -> dict[str, Any]:
        """What the backend reports about where this environment lives (local: its port block)."""
        return {}


class FirstUp:
    """Whether an ``up`` is the environment's first (no record, no directory yet), taken before it
    creates anything. Used as ``with`` around what ``up`` creates: when it is the first and fails
    (an error or Ctrl-C), :meth:`Environment._undo_first_up` removes it all, then the error goes on."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.first = env.state.load_record(env.name) is None and not env.dir.exists()
        self.had_secrets = env.state.secrets_dir(env.name).exists()

    def __enter__(self) -> FirstUp:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        if exc_type is not None and self.first:
            self.env._undo_first_up(self.had_secrets)
        return False
