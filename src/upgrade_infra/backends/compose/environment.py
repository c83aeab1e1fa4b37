"""The ``compose`` backend: an environment is one Docker Compose project (``<stack>-<env>``).

- PostgreSQL runs as a container of ``compose.postgres.image`` (default ``upgrade-infra/postgres:<major>``)
  with its data in the project's named volume (``<project>_pgdata``); the tool reaches it through a
  loopback-published port of the environment's port block (``127.0.0.1:<port_base>``), as the
  ``postgres`` superuser with a password generated for the environment; services reach it as
  ``<pg service>:5432`` on the project's network, with the per-database roles the manifest implies.
- Each service is a container of ``compose.services.<svc>.image`` with ``{version}`` replaced (or the
  digest recorded for the version), its env rendered from the manifest, its named volumes, published on
  ``127.0.0.1:<its port>`` and, where the user's Compose file declares one, its healthcheck.
- The project's Compose file is generated from the manifest into the environment's directory (0600: it
  carries the rendered env) and always run with an explicit ``--project-name``; the project name is
  recorded at creation and the backend refuses to run under another one (a renamed project starts on
  new, empty volumes).
- Readiness: the Compose healthcheck when declared, else the manifest's probe. One-off jobs
  (``run_job``: migrations, downgrades, a seed) run as ``docker run`` of the service's image at the
  given version on the project network, with the service's volumes. Client tools (``pg_dump``…) run on
  the host when it has the server's major, else ``docker exec`` in the database container.
- ``down`` removes the containers and the network (volumes stay); ``destroy`` removes the project's
  volumes too, and nothing of another project.
- An adopted project (``env adopt``: one the user started from their own Compose file) keeps the user's
  names: its project, container, volume and network names, published ports, PostgreSQL image and superuser
  (``compose.postgres.user`` with the password of ``compose.postgres.password_secret``) are recorded in
  ``backend_state.adopted``; the generated Compose file declares its volumes ``external`` (Compose never
  makes one anew), no roles or databases are created, and ``destroy`` keeps its volumes unless asked.
  Every named volume its services mount is service data in the engine (:class:`ProjectVolumes`).

The ``clone`` restore-point strategy is SQL and works unchanged; strategies that need the data
directory on the host (``fs``, ``cow``) are refused through the capability check.
"""

from __future__ import annotations

import os
import secrets as pysecrets
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from upgrade_infra.backends import health
from upgrade_infra.backends.interface import (
    Database,
    Endpoint,
    EngineVolumes,
    Environment,
    EnvStatus,
    HostPath,
    ServerVolumes,
    ServiceData,
    ServiceStatus,
    ToolArg,
)
from upgrade_infra.backends.placement import PortBlock, new_port_base
from upgrade_infra.backends.registry import register_backend
from upgrade_infra.backends.results import EnvDown, EnvUp
from upgrade_infra.core import runner, sql
from upgrade_infra.core.errors import BadInput, CommandFailed, OperationFailed, ServiceNotReady
from upgrade_infra.core.state import StateDir
from upgrade_infra.stack import secrets as secretlib
from upgrade_infra.stack import templates
from upgrade_infra.stack.manifest import ComposeServiceSpec, Manifest
from upgrade_infra.stack.ports import POSTGRES, check_free

TOOL_HOST = "127.0.0.1"
PG_PORT = 5432
PG_SUPERUSER = "postgres"
PG_DATA = "/var/lib/postgresql/data"
ENV_LABEL = "org.upgrade-infra.env"
STATE_LABEL = "org.upgrade-infra.state"  # which state dir a project belongs to (a digest of its path)
DEFAULT_CONTAINER_PORT = 8000
POLL_MAX_S = 0.25  # readiness polling period, at most


class ProjectRenamed(BadInput):
    """The environment's recorded Compose project differs from the one computed now."""


class VolumeRenamed(BadInput):
    """A named volume the environment keeps data in is no longer named so by the manifest."""


class ProjectTaken(BadInput):
    """The Compose project exists on the engine but belongs to another state dir."""


class ImageMissing(BadInput):
    """An image the environment needs is not on the engine (and ``compose.pull`` is ``never``)."""


class ImagePullFailed(OperationFailed):
    """``compose.pull: missing`` and pulling a missing image failed (registry unreachable, no such image)."""


def project_name(manifest: Manifest, env: str) -> str:
    return f"{manifest.name}-{env}".lower()


def image_for(spec: ComposeServiceSpec, version: str) -> str:
    """The image reference of a service version: the digest recorded for it, else the template's tag."""
    digest = spec.digests.get(version)
    ref = spec.image.replace("{version}", version)
    if "{digest}" in ref:
        if not digest:
            raise BadInput(f"image {spec.image!r} needs a digest for version {version!r}",
                           fix=f"add compose.services.<svc>.digests.{version}")
        ref = ref.replace("{digest}", digest)
    elif digest:
        repo = ref.split("@", 1)[0]
        last = repo.rsplit("/", 1)[-1]
        if ":" in last:
            repo = repo[: len(repo) - len(last)] + last.split(":", 1)[0]
        ref = f"{repo}@{digest}"
    return ref


#: the socket directory the tool's `docker exec` client tools use, whatever the image's build default is
#: (Debian's PostgreSQL uses it already; a build from source, such as the 16 image's, uses /tmp)
PG_SOCKET_DIR = "/run/postgresql"


def postgres_command(manifest: Manifest) -> list[str]:
    """The PostgreSQL container's command: the socket where the tools look for it, then the manifest's settings."""
    return ["postgres", "-c", f"unix_socket_directories={PG_SOCKET_DIR}",
            *[x for k, v in manifest.postgres.settings.items() for x in ("-c", f"{k}={v}")]]


def _escape(value: str) -> str:
    """A value Compose must not interpolate."""
    return str(value).replace("$", "$$")


class ComposeDatabase(Database):
    """The database container: the tool connects through the published loopback port; client tools run
    on the host when it has the server's major, else in the container (``docker exec``)."""

    def __init__(self, env: ComposeEnvironment) -> None:
        self.env = env
        self._host_install: Any = False

    @property
    def major(self) -> int:
        m = self.env.backend_state.get("pg_major") or self.env.manifest.postgres.major
        return int(m or 15)

    def password(self) -> str:
        return self.env.admin_password()

    def conninfo(self, db: str = "postgres") -> str:
        from psycopg.conninfo import make_conninfo

        return make_conninfo(host=self.env.tool_host(POSTGRES), port=self.env.ports[POSTGRES], user=self.env.pg_user,
                             password=self.password(), dbname=db, connect_timeout=10)

    @property
    def host_install(self) -> Any:
        """A PostgreSQL install of the server's major on the tool's host, or None (looked up again when
        the major changed: a major upgrade switches the server under the same environment)."""
        if self._host_install is False or getattr(self, "_host_major", None) != self.major:
            self._host_major = self.major
            from upgrade_infra.backends.local import postgres as pglib

            try:
                found = [i for i in pglib.find_installs() if i.major == self.major]
            except Exception:  # noqa: BLE001 - no local PostgreSQL at all is fine here
                found = []
            self._host_install = found[0] if found else None
        return self._host_install

    def tool_conninfo(self, db: str = "postgres") -> str:
        if self.host_install is not None:
            return self.conninfo(db)
        return f"host=/run/postgresql port={PG_PORT} user={self.env.pg_user} dbname={db}"  # trusted local socket

    def endpoint(self) -> Endpoint:
        return Endpoint(self.env.tool_host(POSTGRES), self.env.ports[POSTGRES], "postgresql")

    def service_endpoint(self) -> Endpoint:
        return Endpoint(self.env.pg_service, PG_PORT, "postgresql")

    def _docker(self) -> list[str]:
        docker = shutil.which("docker")
        if not docker:
            raise BadInput("the docker CLI is needed to run PostgreSQL's client tools in the database container",
                           fix=f"install the docker CLI, or PostgreSQL {self.major}'s client tools on this host")
        return [docker]

    def run_tool(self, tool: str, args: Sequence[ToolArg], *, stdout_path: Path | None = None,
                 stdin_path: Path | None = None, env: dict[str, str] | None = None,
                 timeout: float | None = None, check: bool = True) -> runner.Completed:
        from upgrade_infra.backends.local.environment import _run_streamed

        if self.host_install is not None:
            argv = [self.host_install.bin(tool), *(str(a) for a in args)]
            full_env = runner.base_env(env) if env is not None else None
            if stdout_path is None and stdin_path is None:
                return runner.run(argv, env=full_env, timeout=timeout, check=check)
            return _run_streamed(argv, full_env, timeout, check, stdout_path, stdin_path)
        # in the container: host paths are copied in before (read) and out after (written)
        container = self.env.container_name(self.env.pg_service)
        docker = self._docker()
        denv = runner.base_env(self.env.engine.env())
        scratch = f"/tmp/uix-{pysecrets.token_hex(4)}"
        mapped: list[str] = []
        outs: list[tuple[str, Path]] = []
        runner.run([*docker, "exec", "-u", PG_SUPERUSER, container, "mkdir", "-p", scratch], env=denv, timeout=60)
        try:
            for i, a in enumerate(args):
                if isinstance(a, HostPath):
                    inside = f"{scratch}/{i}"
                    if a.mode == "r":
                        runner.run([*docker, "cp", str(a.path), f"{container}:{inside}"], env=denv, timeout=3600)
                        runner.run([*docker, "exec", "-u", "0", container, "chown", "-R", PG_SUPERUSER, inside],
                                   env=denv, timeout=600)
                    else:
                        outs.append((inside, a.path))
                    mapped.append(inside)
                else:
                    mapped.append(str(a))
            envargs: list[str] = []
            for k in env or {}:
                envargs += ["-e", k]  # the value comes from our environment, never argv
            argv = [*docker, "exec", "-i", "-u", PG_SUPERUSER, *envargs, container, tool, *mapped]
            full_env = {**denv, **(env or {})}
            if stdout_path is None and stdin_path is None:
                res = runner.run(argv, env=full_env, timeout=timeout, check=check)
            else:
                res = _run_streamed(argv, full_env, timeout, check, stdout_path, stdin_path)
            for inside, host in outs:
                if host.exists():
                    shutil.rmtree(host) if host.is_dir() else host.unlink()
                runner.run([*docker, "cp", f"{container}:{inside}", str(host)], env=denv, timeout=3600)
            return res
        finally:
            runner.run([*docker, "exec", "-u", "0", container, "rm", "-rf", scratch], env=denv, timeout=120,
                       check=False)

    def attach_tool(self, tool: str, args: Sequence[str], *, env: dict[str, str] | None = None) -> int:
        if self.host_install is not None:
            return runner.attached([self.host_install.bin(tool), *args], env=runner.base_env(env), cwd=Path.cwd())
        envargs = [x for k in (env or {}) for x in ("-e", k)]
        return runner.attached([*self._docker(), "exec", "-it", "-u", PG_SUPERUSER, *envargs,
                                self.env.container_name(self.env.pg_service), tool, *args],
                               env=runner.base_env({**self.env.engine.env(), **(env or {})}), cwd=Path.cwd())

    def tool_command(self, tool: str, args: Sequence[str]) -> list[str]:
        if self.host_install is not None:
            return [self.host_install.bin(tool), *args]
        return ["docker", "exec", "-i", "-u", PG_SUPERUSER, self.env.container_name(self.env.pg_service), tool, *args]


class VolumeData(ServiceData):
    """A service's data volume (the first of ``compose.services.<svc>.volumes``) is a named volume of the
    project bound to ``<state>/envs/<env>/data/<svc>``: restore points copy that directory and rollbacks
    swap it by rename while the service's container is removed, exactly as for the local backend (same
    filesystem as the restore points and the quarantine). An adopted project's volumes are the user's
    plain named volumes: none is on the host (:class:`ProjectVolumes` captures them)."""

    def __init__(self, env: ComposeEnvironment) -> None:
        self.env = env

    def path(self, service: str) -> Path:
        return self.env.data_dir(service)

    def on_host(self, service: str) -> bool:
        return not self.env.adopted


class ProjectVolumes(EngineVolumes):
    """The named volumes of the project that are not bound into the state dir: every volume a service of
    an adopted project mounts, and every volume after a service's first in a generated one. Copies run in
    a short-lived helper container of the PostgreSQL image (sh, cp, du), without network."""

    def __init__(self, env: ComposeEnvironment) -> None:
        self.env = env

    def live(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for n, svc in self.env.manifest.services.items():
            cs = self.env.spec.services.get(n)
            if cs is None or not svc.data_dir:
                continue
            first = self.env.data_volume(n)
            for v in cs.volumes:
                if self.env.adopted or v != first:
                    out.setdefault(v, self.env.volume_name(v))
        return out

    def snapshot(self, source: str, target: str, labels: dict[str, str]) -> int:
        return self.env.driver.copy_volume(source, target, image=self.env.pg_image, labels=labels).bytes

    def copy_back(self, source: str, target: str) -> int:
        return self.env.driver.copy_volume(source, target, image=self.env.pg_image, clear=True).bytes

    def exists(self, name: str) -> bool:
        return bool(self.env.driver.volume_exists(name))

    def remove(self, name: str) -> None:
        self.env.driver.remove_volume(name)

    def labelled(self, label: str, value: str) -> list[str]:
        return [v.name for v in self.env.driver.client.volumes.list(filters={"label": f"{label}={value}"})]


@register_backend("compose")
class ComposeEnvironment(PortBlock, Environment):
    """One Compose project per environment (see the module's docstring)."""

    capabilities = frozenset({ServiceData, EngineVolumes, ServerVolumes})
    _engine: Any = None
    _cli: Any = None
    _driver: Any = None
    _database: ComposeDatabase | None = None
    _healthchecks: dict[str, dict] | None = None
    _user_data: dict[str, Any] | None = None

    # -- identity and placement -------------------------------------------------------------------
    @classmethod
    def new_backend_state(cls, manifest: Manifest, state: StateDir, name: str, *, kind: str,
                          requested: dict[str, Any] | None = None) -> dict[str, Any]:
        requested = requested or {}
        out: dict[str, Any] = {"project": project_name(manifest, name)}
        out["port_base"] = new_port_base(manifest, state, name, requested)
        return out

    def placement(self) -> dict[str, Any]:
        if self.adopted:
            return {"project": self.project, "ports": self.ports, "adopted": True}
        return {"port_base": self.port_base, "project": self.project}

    @property
    def adopted(self) -> dict[str, Any] | None:
        """What ``env adopt`` recorded of a project the user started (names, ports, images), or None."""
        return self.backend_state.get("adopted")

    @property
    def ports(self) -> dict[str, int]:
        if self.adopted:
            return {k: int(v) for k, v in self.adopted["ports"].items()}
        return PortBlock.ports.fget(self)  # type: ignore[attr-defined]

    @property
    def pg_user(self) -> str:
        """The tool's PostgreSQL superuser: ours (``postgres``), or an adopted project's own
        (``compose.postgres.user``)."""
        return (self.spec.postgres.user or PG_SUPERUSER) if self.adopted else PG_SUPERUSER

    @property
    def project(self) -> str:
        """The Compose project; refuses when the recorded one differs from ``<stack>-<env>`` (an adopted
        project: from ``compose.project``, when the stack names one)."""
        computed = project_name(self.manifest, self.name)
        if self.adopted:
            computed = (self.manifest.compose.project if self.manifest.compose else None) \
                or self.backend_state.get("project") or computed
        recorded = self.backend_state.setdefault("project", computed)
        if recorded != computed:
            raise ProjectRenamed(
                f"environment {self.name!r} runs as Compose project {recorded!r} (volumes {recorded}_*), but the "
                f"stack now names it {computed!r}: running it as {computed!r} would start on new, empty volumes",
                fix=f"restore the stack's name in {self.manifest.path.name} (project {recorded!r}), or move the data "
                    f"first; nothing was changed", recorded=recorded, computed=computed)
        return recorded

    def data_volumes(self) -> dict[str, list[str]]:
        """The named volumes (manifest keys) holding data, by owner: ``postgres`` and each service."""
        out = {POSTGRES: [self.spec.postgres.volume or "pgdata"]}
        for n in self.manifest.services:
            if n in self.spec.services:
                out[n] = list(self.spec.services[n].volumes)
        return out

    def require_same_names(self) -> None:
        """The rename guard: the project (:attr:`project`) and every data volume keep the names they were
        created with. A volume renamed in the manifest (``compose.postgres.volume``, a key of
        ``compose.services.<svc>.volumes``) would be created new and empty by the next ``up``: refused,
        naming both. New volumes (a mount added) are fine and recorded."""
        self.project  # noqa: B018 - the project rename guard
        now = self.data_volumes()
        recorded = self.backend_state.setdefault("volumes", now)
        gone = [(owner, v) for owner, vols in recorded.items() if owner in now for v in vols if v not in now[owner]]
        if gone:
            names = ", ".join(f"{self.volume_name(v)} ({owner})" for owner, v in gone)
            new = ", ".join(self.volume_name(v) for owner, _ in gone for v in now[owner]
                            if v not in recorded.get(owner, []))
            raise VolumeRenamed(
                f"environment {self.name!r} keeps its data in volume{'s' if len(gone) > 1 else ''} {names}, which "
                f"{self.manifest.path.name} no longer names (now {new or 'none'}): running it would start on new, "
                "empty volumes", fix=f"restore the volume name{'s' if len(gone) > 1 else ''} under compose: in "
                f"{self.manifest.path.name} ({', '.join(v for _, v in gone)}); nothing was changed",
                volumes=[self.volume_name(v) for _, v in gone])
        if now != recorded:
            self.backend_state["volumes"] = {**recorded, **now}

    # -- engine ----------------------------------------------------------------------------------
    @property
    def engine(self) -> Any:
        if self._engine is None:
            from upgrade_infra.backends.compose.engine import find_engine

            self._engine = find_engine()
        return self._engine

    @property
    def cli(self) -> Any:
        if self._cli is None:
            from upgrade_infra.backends.compose.driver import ComposeCLI

            self._cli = ComposeCLI(self.engine)
        return self._cli

    @property
    def driver(self) -> Any:
        if self._driver is None:
            from upgrade_infra.backends.compose.driver import EngineDriver

            self._driver = EngineDriver(self.engine)
        return self._driver

    # -- names -----------------------------------------------------------------------------------
    @property
    def spec(self) -> Any:
        if self.manifest.compose is None:
            raise BadInput(f"environment {self.name!r} uses the compose backend but {self.manifest.path.name} has no "
                           "compose: section", fix="write one with `upgrade-infra import compose docker-compose.yml`")
        return self.manifest.compose

    @property
    def pg_service(self) -> str:
        return self.spec.postgres.service

    @property
    def pg_image(self) -> str:
        """The image PostgreSQL runs: the one a major upgrade switched to (``backend_state.pg_server``),
        else the adopted project's, else the manifest's."""
        switched = self.backend_state.get("pg_server") or {}
        if switched.get("image"):
            return str(switched["image"])
        if self.adopted and self.adopted.get("pg_image"):
            return str(self.adopted["pg_image"])
        return self.spec.postgres.image or f"upgrade-infra/postgres:{self.manifest.postgres.major or 15}"

    def compose_service(self, service: str) -> str:
        return self.spec.services[service].service or service

    def container_port(self, service: str) -> int:
        return self.spec.services[service].container_port or DEFAULT_CONTAINER_PORT

    def container_name(self, service: str) -> str:
        if self.adopted and service in self.adopted.get("containers", {}):
            return str(self.adopted["containers"][service])
        return f"{self.project}-{service}-1"

    def volume_name(self, volume: str) -> str:
        if self.adopted and volume in self.adopted.get("volumes", {}):
            return str(self.adopted["volumes"][volume])
        return f"{self.project}_{volume}"

    @property
    def pg_volume(self) -> str:
        """The volume of PostgreSQL's data: the one a major upgrade switched to, else ``<project>_pgdata``."""
        switched = self.backend_state.get("pg_server") or {}
        return switched.get("volume") or self.volume_name(self.spec.postgres.volume or "pgdata")

    @property
    def network(self) -> str:
        if self.adopted and self.adopted.get("network"):
            return str(self.adopted["network"])
        return f"{self.project}_default"

    @property
    def compose_file(self) -> Path:
        return self.state.checked(self.dir / "compose" / "docker-compose.yml")

    def data_dir(self, service: str) -> Path:
        return self.state.checked(self.dir / "data" / service)  # a planted symlink cannot lead out

    def data_volume(self, service: str) -> str | None:
        """The service's data volume (the first it mounts), bound to :meth:`data_dir`."""
        vols = self.spec.services[service].volumes if service in self.spec.services else {}
        return next(iter(vols), None)

    def _prepare_data_dir(self, service: str, image: str) -> None:
        """Create the service's data dir owned like the mount target in its image (the image's own user
        writes there; a bind-backed volume does not take the image's ownership as a plain volume does)."""
        vol = self.data_volume(service)
        if vol is None or self.adopted:
            return
        d = self.data_dir(service)
        if d.exists():
            return
        d.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = d.with_name(d.name + ".partial")
        self.state.remove(tmp, ignore_errors=True)
        tmp.mkdir(mode=0o700)
        target = self.spec.services[service].volumes[vol]
        try:
            self.driver.client.containers.run(image, ["chown", "--reference", target, "/uix-data"], user="0",
                                              entrypoint=[], remove=True, network_disabled=True,
                                              volumes={str(tmp): {"bind": "/uix-data", "mode": "rw"}},
                                              labels={"org.upgrade-infra.helper": "data-dir-owner"})
        except Exception:  # noqa: BLE001 - an image without coreutils: root-owned, the service may still run as root
            pass
        os.replace(tmp, d)

    def image(self, service: str, version: str | None = None) -> str:
        """The image reference to run ``service`` at ``version``: its tag (or digest), unless a rollback
        pinned the image ID it ran at that version and the tag has moved since (then a tag of our own
        on that very image)."""
        ver = version or self.record.versions[service]
        ref = image_for(self.spec.services[service], ver)
        pin = self.backend_state.get("pins", {}).get(service)
        if not pin or pin.get("version") != ver:
            return ref
        client = self.driver.client
        try:
            if client.images.get(ref).id == pin["image"]:
                return ref
        except self.driver.docker.errors.ImageNotFound:
            pass
        pinned = f"upgrade-infra-pin/{self.project}-{service}:{ver}"
        try:
            client.images.get(pin["image"]).tag(pinned)
        except self.driver.docker.errors.ImageNotFound:
            raise ImageMissing(f"image {pin['image'][:19]} that {service} {ver} ran at the restore point is gone "
                               f"from the engine, and {ref} is now another image",
                               fix=f"restore the image (docker load/pull) or re-tag {ref}") from None
        return pinned

    def check_runnable(self, versions: dict[str, str], images: dict[str, str] | None = None) -> None:
        """Before an upgrade or rollback changes anything: the project name is the recorded one, the engine
        answers, the user's Compose file is valid, and the images of ``versions`` (and the image IDs a
        restore point recorded) are on the engine, pulled first when ``compose.pull`` is ``missing``."""
        self.require_same_names()
        self._user_file()
        self.require_images([self.image(s, v) for s, v in versions.items() if s in self.spec.services],
                            "nothing was stopped or changed")
        gone = []
        for svc, image_id in (images or {}).items():
            try:
                self.driver.client.images.get(image_id)
            except self.driver.docker.errors.ImageNotFound:
                gone.append(f"{svc} {image_id[:19]}")
        if gone:
            raise ImageMissing(f"image{'s' if len(gone) > 1 else ''} the restore point recorded ({', '.join(gone)}) "
                               f"{'are' if len(gone) > 1 else 'is'} gone from the engine ({self.engine.host}); "
                               "nothing was changed", fix="load the images again (docker load) or roll back to "
                                                          "another restore point", images=gone)

    def pin_images(self, images: dict[str, str]) -> None:
        """After a rollback: run each service at the image ID recorded with its version (tags move)."""
        self.backend_state["pins"] = {s: {"version": self.record.versions[s], "image": i}
                                      for s, i in images.items() if s in self.record.versions}
        self.save()

    def admin_password(self) -> str:
        if self.adopted:
            return self._secret(self.spec.postgres.password_secret, "compose.postgres.password_secret")
        return secretlib.db_password(self.state, self.name, "_superuser")

    def _secret(self, name: str | None, field: str) -> str:
        if not name:
            raise BadInput(f"environment {self.name!r} is an adopted Compose project but {self.manifest.path.name} "
                           f"sets no {field}", fix=f"name the secret holding the password in {field}")
        return self.secrets()[name]

    def db_info(self, view: str = "services") -> dict[str, dict[str, Any]]:
        """An adopted project's services use the user's own roles (``compose.databases.<db>.users``, else
        ``compose.postgres.user``) and passwords (their ``password_secret``); ours are generated."""
        if not self.adopted:
            return super().db_info(view)
        ep = self.database.service_endpoint() if view == "services" else self.database.endpoint()
        out = {}
        for db in self.manifest.postgres.databases:
            dspec = self.spec.databases.get(db)
            user = (dspec.users[0] if dspec and dspec.users else None) or self.pg_user
            pw = (self._secret(dspec.password_secret, f"compose.databases.{db}.password_secret")
                  if dspec and dspec.password_secret else self.admin_password())
            out[db] = {"name": db, "user": user, "password": pw, "host": ep.host, "port": ep.port,
                       "url": f"postgresql://{quote(user, safe='')}:{quote(pw, safe='')}@{ep.host}:{ep.port}/{db}"}
        return out

    def _capability(self, cap):  # type: ignore[no-untyped-def]
        if cap is ServerVolumes:
            from upgrade_infra.backends.compose.servers import ComposeServerVolumes

            return ComposeServerVolumes(self)
        return {ServiceData: VolumeData, EngineVolumes: ProjectVolumes}[cap](self)

    # -- endpoints and contexts --------------------------------------------------------------------
    def tool_host(self, service: str) -> str:
        """Where the tool reaches a published port: loopback, or the one address an adopted project's
        user published it on."""
        return str((self.adopted or {}).get("hosts", {}).get(service) or TOOL_HOST)

    def endpoint(self, service: str) -> Endpoint:
        return Endpoint(self.tool_host(service), self.ports[service])

    def service_address(self, service: str) -> Endpoint:
        return Endpoint(self.compose_service(service), self.container_port(service))

    def listen_address(self, service: str) -> Endpoint:
        return Endpoint("0.0.0.0", self.container_port(service))

    def service_paths(self, service: str, version: str | None = None) -> dict[str, str]:
        vols = self.spec.services[service].volumes if service in self.spec.services else {}
        return {"data_dir": next(iter(vols.values()), ""), "install_dir": "", "log_dir": ""}

    @property
    def database(self) -> ComposeDatabase:
        if self._database is None:
            self._database = ComposeDatabase(self)
        return self._database

    # -- the generated Compose file ------------------------------------------------------------------
    def _user_healthchecks(self) -> dict[str, dict]:
        """Healthchecks the user's Compose file declares, by Compose service name (copied as written)."""
        if self._healthchecks is None:
            self._healthchecks = self._read_healthchecks()
        return self._healthchecks

    def _user_file(self) -> dict[str, Any]:
        if self._user_data is None:
            self._user_data = {}
            path = (self.manifest.stack_dir / self.spec.file).resolve() if self.spec.file else None
            if path is not None and path.is_file():
                from ruamel.yaml import YAML

                from upgrade_infra.backends.compose.driver import check_compose_file

                check_compose_file(path)  # Compose's own message, file and line
                self._user_data = YAML(typ="safe", pure=True).load(path.read_text()) or {}
        return self._user_data

    def _read_healthchecks(self) -> dict[str, dict]:
        data = self._user_file()
        return {n: s["healthcheck"] for n, s in (data.get("services") or {}).items()
                if isinstance(s, dict) and isinstance(s.get("healthcheck"), dict)
                and not s["healthcheck"].get("disable")}

    def _user_depends(self) -> dict[str, dict[str, str]]:
        """service -> dependency -> condition, as the user's Compose file writes them (long form only)."""
        out: dict[str, dict[str, str]] = {}
        for n, svc in (self._user_file().get("services") or {}).items():
            deps = svc.get("depends_on") if isinstance(svc, dict) else None
            if isinstance(deps, dict):
                out[n] = {d: str((v or {}).get("condition", "service_started")) for d, v in deps.items()}
        return out

    def _service_env(self, service: str, version: str, **extra: Any) -> dict[str, str]:
        spec = self.manifest.service(service)
        vs = self.manifest.version_of(service, version)
        env = {**spec.env, **vs.env}
        if self.kind == "staging":
            env.update(self.manifest.staging.overrides.get(service, {}))
        return templates.render_env(env, self.service_context(service, version, **extra))

    def _service_command(self, service: str, version: str) -> list[str] | None:
        spec = self.manifest.service(service)
        vs = self.manifest.version_of(service, version)
        command = vs.command or spec.command
        if not command.strip():
            return None
        return templates.build_argv(command, self.service_context(service, version))

    @property
    def state_mark(self) -> str:
        import hashlib

        return hashlib.sha256(str(self.state.root).encode()).hexdigest()[:16]

    def require_own_project(self) -> None:
        """Refuse a project of the same name made from another state dir (another copy of the stack):
        starting it here would take over that one's containers and volumes."""
        try:
            labels = self.driver.volume_labels(self.pg_volume)
        except self.driver.docker.errors.NotFound:
            return
        theirs = labels.get(STATE_LABEL)
        if theirs is not None and theirs != self.state_mark:
            raise ProjectTaken(f"Compose project {self.project!r} on {self.engine.host} belongs to another state dir "
                               f"(another copy of stack {self.manifest.name!r}); {self.name} was not started",
                               fix="give this stack copy another name: (projects are <stack>-<env>), or use the "
                                   "state dir that made it", project=self.project)

    def compose_model(self) -> dict[str, Any]:
        self.require_same_names()  # every Compose run goes through this file: no volume is made under a new name
        hcs = self._user_healthchecks()
        pg = self.pg_service
        labels = {ENV_LABEL: self.name, STATE_LABEL: self.state_mark}
        pg_cmd = postgres_command(self.manifest)
        services: dict[str, Any] = {pg: {
            "image": self.pg_image,
            "command": pg_cmd,
            "environment": {"POSTGRES_USER": PG_SUPERUSER, "POSTGRES_PASSWORD": _escape(self.admin_password())},
            "volumes": [f"{self.spec.postgres.volume or 'pgdata'}:{PG_DATA}"],
            "healthcheck": {"test": ["CMD-SHELL", f"pg_isready -h 127.0.0.1 -p {PG_PORT} -U {PG_SUPERUSER}"],
                            "interval": "1s", "timeout": "5s", "retries": 300, "start_period": "120s"},
            "ports": [f"{TOOL_HOST}:{self.ports[POSTGRES]}:{PG_PORT}"],
            "labels": labels, "stop_grace_period": "30s",
        }}
        volumes: dict[str, Any] = {self.spec.postgres.volume or "pgdata": {"labels": labels}}
        if self.adopted:
            self._adopted_postgres(services[pg], volumes)
        elif self.pg_volume != self.volume_name(self.spec.postgres.volume or "pgdata"):
            # a major upgrade's volume (made by the tool, labelled with the project): used as it is
            volumes[self.spec.postgres.volume or "pgdata"] = {"external": True, "name": self.pg_volume}
        for name in self.manifest.services:
            cs = self.spec.services[name]
            version = self.record.versions[name]
            svc: dict[str, Any] = {
                "image": self.image(name, version),
                "environment": {k: _escape(v) for k, v in self._service_env(name, version).items()},
                "ports": [self._published(name)],
                "labels": {**labels, "org.upgrade-infra.version": version},
                "depends_on": {pg: {"condition": "service_healthy"}},
                "stop_grace_period": f"{int(self.manifest.policies.stop_timeout_s)}s",
                # an init as PID 1 passes SIGTERM on: a process without a handler of its own (Python's
                # default) is otherwise immune to it as PID 1 and every stop waits the whole grace period
                "init": True,
            }
            cmd = self._service_command(name, version)
            if cmd:
                svc["command"] = [_escape(a) for a in cmd]
            if cs.volumes:
                svc["volumes"] = [f"{v}:{target}" for v, target in cs.volumes.items()]
                for v in cs.volumes:
                    # an adopted project's volumes are the user's: external (Compose never makes them anew)
                    volumes.setdefault(v, {"external": True, "name": self.volume_name(v)} if self.adopted
                                       else {"labels": labels})
                if not self.adopted:
                    volumes[self.data_volume(name)] = {  # the data volume lives in the state dir (VolumeData)
                        "labels": labels, "driver": "local",
                        "driver_opts": {"type": "none", "o": "bind", "device": str(self.data_dir(name))}}
            hc = hcs.get(self.compose_service(name)) if cs.healthcheck else None
            if hc:
                svc["healthcheck"] = hc
            for dep in self.manifest.services[name].depends_on:
                dep_hc = self.spec.services[dep].healthcheck and self.compose_service(dep) in hcs
                wanted = self._dep_condition(name, dep)
                svc["depends_on"][self.compose_service(dep)] = {
                    "condition": wanted if (dep_hc or wanted != "service_healthy") else "service_started"}
            services[self.compose_service(name)] = svc
        return {"name": self.project, "services": services, "volumes": volumes}

    def _published(self, service: str) -> str:
        """``HOST_IP:HOST_PORT:CONTAINER_PORT`` of a service (``postgres`` included): an adopted project's
        as the user published it, else the environment's loopback port."""
        if self.adopted and service in self.adopted.get("published", {}):
            return str(self.adopted["published"][service])
        inner = PG_PORT if service == POSTGRES else self.container_port(service)
        return f"{TOOL_HOST}:{self.ports[service]}:{inner}"

    def _adopted_postgres(self, svc: dict[str, Any], volumes: dict[str, Any]) -> None:
        """The database service of an adopted project as the user runs it: their image, command, superuser
        and password, their volume (external), their published port."""
        a = self.adopted or {}
        key = self.spec.postgres.volume or "pgdata"
        svc["command"] = [_escape(x) for x in a.get("pg_command") or []] or None
        if svc["command"] is None:
            del svc["command"]
        svc["environment"] = {"POSTGRES_USER": self.pg_user, "POSTGRES_PASSWORD": _escape(self.admin_password())}
        svc["volumes"] = [f"{key}:{a.get('pg_data') or PG_DATA}"]
        svc["healthcheck"]["test"] = ["CMD-SHELL", f"pg_isready -h 127.0.0.1 -p {PG_PORT} -U {self.pg_user}"]
        svc["ports"] = [self._published(POSTGRES)]
        volumes[key] = {"external": True, "name": self.pg_volume}

    def write_compose_file(self) -> Path:
        import json

        path = self.compose_file
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.compose_model(), f, indent=1)  # JSON is YAML: no quoting surprises
        os.replace(tmp, path)
        return path

    def _compose(self, *args: str, timeout: float = 900) -> runner.Completed:
        return self.cli.run(self.project, [self.compose_file], *args, timeout=timeout,
                            cwd=self.manifest.stack_dir)

    def require_images(self, images: Sequence[str], done: str = "nothing was started") -> None:
        """Every image is on the engine, or (``compose.pull: missing``) pulled now; else one error naming
        the images, before anything is started. Never pulls with ``compose.pull: never`` (the default)."""
        client = self.driver.client
        missing = []
        for ref in dict.fromkeys(images):
            try:
                client.images.get(ref)
            except self.driver.docker.errors.ImageNotFound:
                missing.append(ref)
        if not missing:
            return
        where = f"{self.manifest.path.name}: compose.pull"
        if self.spec.pull == "never":
            raise ImageMissing(f"image{'s' if len(missing) > 1 else ''} {', '.join(missing)} not on the engine "
                               f"({self.engine.host}) and {where} is never; {done}",
                               fix="build or load it (docker build / docker load / docker pull), or set compose.pull: "
                                   "missing to let the tool pull it", images=missing)
        for ref in missing:
            if ref.startswith("upgrade-infra-pin/"):  # a local tag of ours: no registry has it
                raise ImageMissing(f"image {ref} (pinned by a rollback) is not on the engine ({self.engine.host}); "
                                   f"{done}", fix="restore the image it tags (docker load)", images=[ref])
            try:
                client.images.pull(ref)
            except self.driver.docker.errors.APIError as e:
                reason = " ".join(str(e.explanation or e).split())
                raise ImagePullFailed(f"image {ref} is not on the engine ({self.engine.host}) and pulling it "
                                      f"({where} is missing) failed: {reason}; {done}",
                                      fix="make its registry reachable (docker login, proxy), or build/load the image "
                                          "on the engine", image=ref) from None

    # -- containers --------------------------------------------------------------------------------
    def _container(self, compose_service: str) -> Any | None:
        found = self.driver.containers(self.project, compose_service)
        running = [c for c in found if c.status == "running"]
        return (running or found or [None])[0]

    def _health(self, compose_service: str) -> str:
        c = self._container(compose_service)
        return "absent" if c is None else self.driver.health(c)

    # -- database ----------------------------------------------------------------------------------
    def database_exists(self) -> bool:
        return self.driver.volume_exists(self.pg_volume)

    def database_running(self) -> bool:
        return self._health(self.pg_service) == "healthy"

    def start_database(self) -> float:
        t0 = time.monotonic()
        self.require_same_names()  # before anything is created
        self.require_own_project()
        self.write_compose_file()
        if self._health(self.pg_service) != "healthy":
            self.require_images([self.pg_image])
            c = self._container(self.pg_service)
            if c is None or c.status != "running":
                check_free({POSTGRES: self.ports[POSTGRES]}, self.name)
            self._compose("up", "--detach", "--no-deps", "--pull", "never", "--no-build", "--wait",
                          "--wait-timeout", "300", self.pg_service, timeout=420)
        # the published port answers a moment after the container is healthy
        deadline = time.monotonic() + 60
        while True:
            try:
                v = sql.fetch_value(self.conninfo(), "SHOW server_version_num")
                major = int(v) // 10000
                if self.backend_state.get("pg_major") != major:
                    self.backend_state["pg_major"] = major
                    self.save()
                break
            except Exception as e:  # noqa: BLE001 - retried until the deadline
                if time.monotonic() > deadline:
                    raise OperationFailed(f"PostgreSQL of {self.name} is healthy in its container but does not "
                                          f"answer on {TOOL_HOST}:{self.ports[POSTGRES]}: {e}",
                                          fix=f"docker logs {self.container_name(self.pg_service)}") from e
                time.sleep(0.2)
        return time.monotonic() - t0

    def stop_database(self) -> float:
        t0 = time.monotonic()
        if self._container(self.pg_service) is not None:
            self._compose("rm", "--force", "--stop", self.pg_service, timeout=120)
        return time.monotonic() - t0

    def provision_database(self) -> bool:
        if self.adopted:  # the user's roles and databases: only checked, never made or changed
            self.start_database()
            missing = [db for db in self.manifest.postgres.databases
                       if not sql.exists(self.conninfo(), sql.DATABASE_EXISTS, db)]
            if missing:
                raise OperationFailed(f"database{'s' if len(missing) > 1 else ''} {', '.join(missing)} of the "
                                      f"manifest missing in adopted project {self.project}",
                                      fix="create them in the project's PostgreSQL, or fix postgres.databases")
            return False
        created = not self.database_exists()
        self.start_database()
        self.ensure_roles_and_databases()
        return created

    # -- services ----------------------------------------------------------------------------------
    def start_services(self, names: list[str] | None = None, *, wait: bool = True,
                       port_wait_s: float = 0.0) -> dict[str, float]:
        order = [n for n in self.manifest.start_order() if names is None or n in names]
        self.write_compose_file()
        self.require_images([self.image(n) for n in order])
        timings: dict[str, float] = {}
        running = {n for n in order if (c := self._container(self.compose_service(n))) is not None
                   and c.status == "running" and c.labels.get("org.upgrade-infra.version") == self.record.versions[n]}
        wanted = {n: self.ports[n] for n in order if n not in running
                  and self._container(self.compose_service(n)) is None}
        if port_wait_s:
            from upgrade_infra.stack.ports import wait_free

            wait_free(wanted, port_wait_s)
        check_free(wanted, self.name)
        for wave in self._waves([n for n in order if n not in running]):
            t0 = time.monotonic()
            for n in wave:
                self._prepare_data_dir(n, self.image(n))
            self._compose("up", "--detach", "--no-deps", "--pull", "never", "--no-build",
                          *[self.compose_service(n) for n in wave], timeout=300)
            for n in wave:
                if wait:
                    self.wait_ready(n)
                timings[n] = time.monotonic() - t0
        return timings

    def _waves(self, order: list[str]) -> list[list[str]]:
        """Services started together: one joins the current wave unless it needs a dependency of that
        wave healthy first (the user's Compose file says ``condition: service_started`` where it does not;
        without a word from it, dependencies are waited for, as the local backend does)."""
        waves: list[list[str]] = []
        for n in order:
            deps = set(self.manifest.services[n].depends_on)
            if waves and not any(d in waves[-1] and self._dep_condition(n, d) != "service_started" for d in deps):
                waves[-1].append(n)
            else:
                waves.append([n])
        return waves

    def _dep_condition(self, service: str, dep: str) -> str:
        cond = (self._user_depends().get(self.compose_service(service)) or {}).get(self.compose_service(dep))
        return cond or "service_healthy"

    def stop_services(self, names: list[str] | None = None) -> dict[str, str]:
        order = [n for n in reversed(self.manifest.start_order()) if names is None or n in names]
        out: dict[str, str] = {}
        present = [n for n in order if self._container(self.compose_service(n)) is not None]
        for n in order:
            out[n] = "stopped" if n in present else "not running"
        if present:
            timeout = int(self.manifest.policies.stop_timeout_s)
            if not self.compose_file.exists():
                self.write_compose_file()
            # one call: stop (each container's stop_grace_period is policies.stop_timeout_s) and remove
            self._compose("rm", "--force", "--stop", *[self.compose_service(n) for n in present],
                          timeout=timeout + 120)
        return out

    def _uses_healthcheck(self, service: str) -> bool:
        cs = self.spec.services.get(service)
        return bool(cs and cs.healthcheck and self.compose_service(service) in self._user_healthchecks())

    def probe(self, service: str) -> health.ProbeResult:
        t0 = time.monotonic()
        if self._uses_healthcheck(service):
            h = self._health(self.compose_service(service))
            return health.ProbeResult(h == "healthy", f"compose healthcheck: {h}", time.monotonic() - t0)
        spec = self.manifest.service(service)
        p = spec.readiness or spec.health
        if p.http or p.command:
            res = self._probe(service, p)
            if not res.ok or not p.check:
                return res
        if p.check and self.readiness_check is not None:
            return self.readiness_check(self, p.check)
        return health.ProbeResult(False, "nothing to probe", 0.0)

    def _probe(self, service: str, p: Any) -> health.ProbeResult:
        argv = env = None
        if p.command:
            argv, env = templates.build_argv(p.command, self.service_context(service)), runner.base_env()
        return health.probe(p, self.service_url(service), argv, env)

    def wait_ready(self, service: str) -> float:
        spec = self.manifest.service(service)
        p = spec.readiness or spec.health
        timeout = p.timeout_s or self.manifest.policies.readiness_timeout_s
        if self._uses_healthcheck(service):
            timeout = max(timeout, 180)  # the file's own start_period and retries decide; we only bound it

        cs = self.compose_service(service)
        seen: dict[str, Any] = {"c": None}

        def container() -> Any | None:
            """The service's container, refreshed by one inspect (looked up by label once, or again when gone)."""
            c = seen["c"]
            if c is not None:
                try:
                    c.reload()
                    return c
                except self.driver.docker.errors.NotFound:
                    pass
            seen["c"] = c = self._container(cs)
            return c

        def state(c: Any | None) -> str:
            st = (c.attrs.get("State") or {}) if c is not None else {}
            if c is None:
                return "absent"
            return st["Health"]["Status"] if st.get("Status") == "running" and st.get("Health") else st.get("Status", "unknown")

        def check() -> health.ProbeResult:
            if not self._uses_healthcheck(service):
                return self.probe(service)
            t0 = time.monotonic()
            seen["state"] = h = state(container())  # one inspect per poll: the healthcheck's status
            return health.ProbeResult(h == "healthy", f"compose healthcheck: {h}", time.monotonic() - t0)

        def died() -> str | None:
            c = seen["c"] if "state" in seen else container()
            h = seen.pop("state", None) or state(c)
            if h in ("exited", "dead", "absent", "unhealthy"):
                return f"container {h}"
            if c is not None and c.attrs.get("RestartCount"):
                return "container restarting"
            return None

        # polled every 0.25 s at most (one inspect each): a healthcheck's status changes once per probe of its
        # own, and a slower poll adds up to its period to every wave of a start (a rollback's critical path)
        result, waited = health.wait_for(check, timeout, abort=died, max_interval=POLL_MAX_S)
        if not result.ok:
            tail = " | ".join(self.log_tail(service, 8))
            raise ServiceNotReady(f"{service} ({self.record.versions[service]}) in {self.name} not ready after "
                                  f"{waited:.1f}s: {result.detail}. Last log lines: {tail}",
                                  fix=f"docker logs {self.container_name(self.compose_service(service))}",
                                  service=service)
        return waited

    def log_tail(self, service: str, n: int = 10) -> list[str]:
        name = self.pg_service if service == POSTGRES else self.compose_service(service)
        c = self._container(name)
        if c is None:
            return []
        try:
            return self.driver.logs_tail(c, n).strip().splitlines()[-n:]
        except Exception:  # noqa: BLE001 - a tail is best effort
            return []

    def run_job(self, service: str, job: str | Sequence[str], version: str | None = None,
                timeout: float | None = None, *, env: dict[str, str] | None = None, cwd: str | None = None,
                **context: Any) -> runner.Completed:
        """A one-off container of ``service``'s image at ``version`` on the project network, with the
        service's env and volumes (``docker compose run --rm`` of another tag); waits and removes it."""
        ver = version or self.record.versions[service]
        if isinstance(job, str):
            template = getattr(self.manifest.service(service), job)
            if not template:
                raise CommandFailed(f"service {service!r} declares no {job} command",
                                    fix=f"add services.{service}.{job} to the manifest")
        ctx = self.service_context(service, ver, **context)
        argv = (templates.build_argv(template, ctx) if isinstance(job, str) else [templates.render(a, ctx) for a in job])
        full_env = self._service_env(service, ver, **context)
        if env:
            full_env.update(templates.render_env(env, ctx))
        image = self.image(service, ver)
        self.require_images([image])
        self._prepare_data_dir(service, image)
        vols = {(str(self.data_dir(service)) if v == self.data_volume(service) and not self.adopted
                 else self.volume_name(v)): {"bind": t, "mode": "rw"}
                for v, t in self.spec.services[service].volumes.items()}
        client = self.driver.client
        t0 = time.monotonic()
        c = client.containers.create(
            image, argv, environment=full_env, network=self.network, volumes=vols,
            working_dir=templates.render(cwd, ctx) if cwd else None,
            labels={ENV_LABEL: self.name, "org.upgrade-infra.job": service,
                    "com.docker.compose.project": self.project, "com.docker.compose.oneoff": "True"})
        try:
            c.start()
            try:
                status = c.wait(timeout=timeout or 3600)
            except Exception as e:  # noqa: BLE001 - the engine's read timeout: the job hangs
                c.kill()
                tail = c.logs(tail=5).decode(errors="replace").strip().replace("\n", " | ")
                raise CommandFailed(f"{' '.join(argv[:4])}… ({service} {ver}, one-off container) timed out after "
                                    f"{timeout}s and was killed{': ' + tail if tail else ''}", argv=argv,
                                    fix="raise the timeout, or see what it waits for") from e
            out = c.logs(stdout=True, stderr=False).decode(errors="replace")
            err = c.logs(stdout=False, stderr=True).decode(errors="replace")
        finally:
            c.remove(force=True)
        return runner.Completed(argv, int(status.get("StatusCode", -1)), out, err, time.monotonic() - t0)

    def exec_attached(self, service: str, argv: Sequence[str], version: str | None = None) -> int:
        docker = shutil.which("docker") or "docker"
        ver = version or self.record.versions[service]
        full_env = self._service_env(service, ver)
        c = self._container(self.compose_service(service))
        envargs = [x for k in full_env for x in ("-e", k)]
        if c is not None and c.status == "running" and ver == self.record.versions[service]:
            cmd = [docker, "exec", "-it", *envargs, c.name, *argv]
        else:
            cmd = [docker, "run", "--rm", "-it", "--network", self.network, *envargs, self.image(service, ver), *argv]
        return runner.attached(cmd, env=runner.base_env({**self.engine.env(), **full_env}), cwd=Path.cwd())

    # -- image IDs (restore points record them) ------------------------------------------------------
    def image_ids(self) -> dict[str, str]:
        """The image ID each service's container runs (or its version's image has, when stopped)."""
        out = {}
        for n in self.manifest.services:
            c = self._container(self.compose_service(n))
            if c is not None:
                out[n] = c.attrs["Image"]
                continue
            try:
                out[n] = self.driver.client.images.get(self.image(n)).id
            except Exception:  # noqa: BLE001 - an image gone from the engine: nothing to record
                continue
        return out

    # -- lifecycle ---------------------------------------------------------------------------------
    def up(self, *, seed: bool = True, seed_mb: float | None = None) -> EnvUp:
        t0 = time.monotonic()
        self.state.ensure()
        first = self._first_up()
        self.require_same_names()
        if not self.adopted:
            self.port_base  # noqa: B018
        self.engine  # noqa: B018 - says at once when no engine answers
        self._user_file()  # an invalid Compose file is refused before anything is created
        self.save()
        with first:
            created = self.provision_database()
            t_db = time.monotonic() - t0
            timings = self.start_services()
            seeded = None
            if seed and created and self.manifest.seed and self.kind == "production" and not self.record.seeded:
                seeded = self._seed(seed_mb)
        return EnvUp(self.name, created, round(t_db, 3), {k: round(v, 3) for k, v in timings.items()},
                     round(time.monotonic() - t0, 3), seeded, project=self.project)

    def _seed(self, size_mb: float | None) -> dict[str, Any]:
        """The manifest's seed once the services are up (they migrate on start): ``seed.service`` runs as
        a one-off container of that service's image (``run_job``), a plain seed on the tool's host."""
        from upgrade_infra.backends.seed import run_seed

        out = run_seed(self, size_mb)
        out["before_start"] = False
        return out

    def down(self) -> EnvDown:
        t0 = time.monotonic()
        stopped = {n: ("stopped" if self._container(self.compose_service(n)) is not None else "not running")
                   for n in self.manifest.start_order()}
        if not self.compose_file.exists():
            self.write_compose_file()
        t_down = time.monotonic()
        self.cli.down(self.project, [self.compose_file], volumes=False,
                      timeout=int(self.manifest.policies.stop_timeout_s))
        # one `compose down` stops the apps, then PostgreSQL, then removes the network: its time as a whole
        return EnvDown(self.name, stopped, round(time.monotonic() - t_down, 3), round(time.monotonic() - t0, 3),
                       project=self.project)

    def status(self, probe: bool = True) -> EnvStatus:
        pg_health = self._health(self.pg_service)
        running = pg_health == "healthy"
        st = EnvStatus(self.name, self.kind, self.backend_name,
                       {"running": running, "port": self.ports[POSTGRES], "major": self.database.major,
                        "container": pg_health, "image": self.pg_image, "volume": self.pg_volume,
                        "project": self.project})
        if running:
            self._database_sizes(st)
        for n in self.manifest.start_order():
            c = self._container(self.compose_service(n))
            alive = bool(c is not None and c.status == "running")
            res = self.probe(n) if (alive and probe) else None
            detail = res.detail if res else (self.driver.health(c) if c is not None else "stopped")
            pid = (c.attrs.get("State") or {}).get("Pid") if alive else None  # the container's main process
            st.services.append(ServiceStatus(n, self.record.versions[n], self.ports[n], alive, bool(res and res.ok),
                                             detail, pid or None))
        return st

    def _remove_project(self, delete_volumes: bool = True) -> None:
        if not self.compose_file.exists():
            self.write_compose_file()
        adopted = self.adopted
        self.cli.down(self.project, [self.compose_file], volumes=not adopted,
                      timeout=int(self.manifest.policies.stop_timeout_s))
        # one-off job containers and volumes of this project only (by its label)
        from upgrade_infra.backends.compose.driver import PROJECT_LABEL

        for c in self.driver.containers(self.project, oneoff=True):
            c.remove(force=True)
        if adopted:  # the user's volumes: only on explicit request
            if delete_volumes:
                for name in {self.pg_volume, *(self.volume_name(v) for cs in self.spec.services.values()
                                               for v in cs.volumes)}:
                    self.driver.remove_volume(name)
            return
        for v in self.driver.client.volumes.list(filters={"label": f"{PROJECT_LABEL}={self.project}"}):
            v.remove(force=True)

    def _discard_first_up(self) -> None:
        try:
            self._remove_project()
        except Exception:  # noqa: BLE001 - best effort: the project may never have been created
            pass

    def destroy(self, *, delete_volumes: bool | None = None) -> None:
        """Remove the project's containers and network, and forget the environment. A generated project's
        volumes go too; an adopted project's volumes are the user's and stay unless ``delete_volumes``."""
        self._remove_project(delete_volumes=not self.adopted if delete_volumes is None else delete_volumes)
        self.state.remove(self.dir, ignore_errors=True)
        self.state.remove(self.state.secrets_dir(self.name), ignore_errors=True)
