"""The backend-neutral environment interface.

An environment is one running copy of the stack: its own PostgreSQL cluster, its own port block,
its own data dirs, services at given versions. Orchestration (snapshots, upgrades, staging,
validation) talks only to this interface; backends (``local``, later ``compose``) implement it.
Template contexts are built here, so every backend renders the manifest the same way.
"""

from __future__ import annotations

import functools
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from upgrade_infra.backends.local.postgres import Cluster
from upgrade_infra.core.state import EnvRecord, StateDir
from upgrade_infra.stack import ports as portlib
from upgrade_infra.stack import secrets as secretlib
from upgrade_infra.stack.manifest import Manifest

HOST = "127.0.0.1"


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

    def __init_subclass__(cls, **kw: Any) -> None:
        """One lock discipline for every backend: its ``up`` and ``down`` are wrapped by :func:`_guarded`."""
        super().__init_subclass__(**kw)
        for verb in ("up", "down"):
            fn = cls.__dict__.get(verb)
            if fn is not None and not getattr(fn, "__isabstractmethod__", False) and not hasattr(fn, "__guarded__"):
                setattr(cls, verb, _guarded(verb, fn))

    def __init__(self, manifest: Manifest, state: StateDir, record: EnvRecord) -> None:
        self.manifest = manifest
        self.state = state
        self.record = record

    # -- identity and layout (shared) -----------------------------------------------------------
    @property
    def name(self) -> str:
        return self.record.name

    @property
    def kind(self) -> str:
        return self.record.kind

    @property
    def dir(self) -> Path:
        return self.state.env_dir(self.name)

    @property
    def ports(self) -> dict[str, int]:
        return portlib.env_ports(self.manifest, self.record.port_base)

    def data_dir(self, service: str) -> Path:
        return self.state.checked(self.dir / "data" / service)  # a planted symlink cannot lead out

    def log_path(self, service: str) -> Path:
        return self.state.checked(self.dir / "logs" / f"{service}.log")

    def service_url(self, service: str) -> str:
        return f"http://{HOST}:{self.ports[service]}"

    def save(self) -> None:
        self.state.save_record(self.record)

    # -- template context (shared by all backends) ------------------------------------------------
    def secrets(self) -> dict[str, str]:
        return secretlib.resolve(self.manifest, self.state, self.name, kind=self.kind, source_env=self.record.source)

    def db_info(self) -> dict[str, dict[str, Any]]:
        pg = self.ports[portlib.POSTGRES]
        out = {}
        for db in self.manifest.postgres.databases:
            pw = secretlib.db_password(self.state, self.name, db)
            out[db] = {"name": db, "user": db, "password": pw, "host": HOST, "port": pg,
                       "url": f"postgresql://{db}:{pw}@{HOST}:{pg}/{db}"}
        return out

    def base_context(self) -> dict[str, Any]:
        return {
            "python": sys.executable, "stack_dir": str(self.manifest.stack_dir), "state_dir": str(self.state.root),
            "env": self.name, "db": self.db_info(), "secrets": self.secrets(),
            "services": {n: {"url": self.service_url(n), "port": p, "host": HOST}
                         for n, p in self.ports.items() if n != portlib.POSTGRES},
            "data_dirs": {n: str(self.data_dir(n)) for n, s in self.manifest.services.items() if s.data_dir},
        }

    def service_context(self, service: str, version: str | None = None, **extra: Any) -> dict[str, Any]:
        ver = version or self.record.versions[service]
        ctx = self.base_context()
        ctx.update(version=ver, port=self.ports[service], host=HOST, data_dir=str(self.data_dir(service)),
                   install_dir=str(self.state.installs_dir(service, ver)), log_dir=str(self.dir / "logs"),
                   to_version=ver, from_version=ver)
        ctx.update(extra)
        return ctx

    def conninfo(self, db: str = "postgres") -> str:
        """Superuser connection to this environment's cluster (the tool's own access)."""
        return self.cluster.admin_conninfo(db)

    # -- what a backend implements -------------------------------------------------------------
    @property
    @abstractmethod
    def cluster(self) -> Cluster: ...

    @abstractmethod
    def up(self, *, seed: bool = True, seed_mb: float | None = None) -> dict[str, Any]: ...

    @abstractmethod
    def down(self) -> dict[str, Any]: ...

    @abstractmethod
    def status(self, probe: bool = True) -> EnvStatus: ...

    @abstractmethod
    def provision_database(self) -> bool:
        """Create the cluster, roles and databases if missing (and start it); True when newly created."""

    @abstractmethod
    def start_database(self) -> float: ...

    @abstractmethod
    def stop_database(self) -> float: ...

    @abstractmethod
    def start_services(self, names: list[str] | None = None, *, wait: bool = True,
                       port_wait_s: float = 0.0) -> dict[str, float]: ...

    @abstractmethod
    def stop_services(self, names: list[str] | None = None) -> dict[str, str]: ...

    @abstractmethod
    def run_service_command(self, service: str, which: str, version: str | None = None,
                            timeout: float | None = None, **extra: Any) -> Any: ...

    @abstractmethod
    def destroy(self) -> None: ...
