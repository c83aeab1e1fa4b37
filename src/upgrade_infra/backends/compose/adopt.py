"""``env adopt``: take over a Compose project the user already runs, without recreating or restarting
anything.

Everything is read and checked first; the environment is recorded only when every check passed
(otherwise :class:`AdoptRefused`, exit 2, one line, nothing written):

- the project (``--project``, else ``compose.project`` of stack.yaml) exists on the engine and every
  container of the stack's services is running and healthy (running, when it declares no healthcheck);
- no environment of that name exists yet in the state dir;
- each service runs an image whose tag (or image ID) is a version the manifest knows;
- every named volume the stack names (``<project>_<volume>``, or an external volume's ``name:``) exists
  and is what the containers mount: acting on the project under other names would start it on new,
  empty volumes;
- PostgreSQL answers on its published port as the user's own superuser (``compose.postgres.user``, the
  password from the secret ``compose.postgres.password_secret`` names: read from the environment variable
  stack.yaml gives, never from argv), its major is the manifest's, and the manifest's databases exist.

What is recorded (``backend_state.adopted``): the container, volume and network names, the published
ports, the PostgreSQL image, command and data path, each service's version and image ID. The secrets the
stack reads from environment variables are kept 0600 in the state dir, so later commands (``upgrade``,
``rollback``, ``stage create``) work without exporting them again.
"""

from __future__ import annotations

import os
import time
from typing import Any

from upgrade_infra.core import sql
from upgrade_infra.core.errors import BadInput
from upgrade_infra.core.state import EnvRecord, StateDir
from upgrade_infra.stack.manifest import Manifest, check_name
from upgrade_infra.stack.ports import POSTGRES


class AdoptRefused(BadInput):
    """``env adopt`` found the project not adoptable as it is (nothing was written)."""


ALL_INTERFACES = ("", "0.0.0.0", "::")


def _published(container: Any, inner: int) -> tuple[str, int] | None:
    """(host IP as published, host port) of a container port; the IP is "" for every interface."""
    ports = (container.attrs.get("NetworkSettings") or {}).get("Ports") or {}
    for b in ports.get(f"{inner}/tcp") or []:
        if b.get("HostPort"):
            ip = b.get("HostIp") or ""
            return ("" if ip in ALL_INTERFACES else ip), int(b["HostPort"])
    return None


def _mounts(container: Any) -> dict[str, str]:
    """Mount target -> named volume of a container."""
    return {m["Destination"]: m["Name"] for m in container.attrs.get("Mounts") or [] if m.get("Type") == "volume"}


def _version_of(driver: Any, spec: Any, versions: list[str], container: Any) -> str | None:
    from upgrade_infra.backends.compose.environment import image_for

    ref = container.attrs["Config"]["Image"]
    for v in versions:
        if image_for(spec, v) == ref:
            return v
    image_id = container.attrs["Image"]
    for v in versions:
        try:
            if driver.client.images.get(image_for(spec, v)).id == image_id:
                return v
        except Exception:  # noqa: BLE001 - an image not on the engine is no match
            continue
    return None


def adopt(manifest: Manifest, state: StateDir, name: str, project: str | None = None) -> dict[str, Any]:
    """Record the running Compose project ``project`` as environment ``name`` (see the module's docstring)."""
    from upgrade_infra.backends.compose.driver import EngineDriver
    from upgrade_infra.backends.compose.engine import find_engine
    from upgrade_infra.backends.compose.environment import DEFAULT_CONTAINER_PORT, PG_PORT, ComposeEnvironment

    t0 = time.monotonic()
    check_name("environment", name)
    spec = manifest.compose
    if spec is None:
        raise AdoptRefused(f"{manifest.path.name} has no compose: section", fix="write one with `upgrade-infra "
                           "import compose docker-compose.yml`")
    declared = manifest.environments.get(name)
    if declared is not None and declared.backend != "compose":
        raise AdoptRefused(f"environment {name!r} uses the {declared.backend!r} backend in {manifest.path.name}",
                           fix=f"set environments.{name}.backend: compose")
    if state.load_record(name) is not None or state.env_dir(name).exists():
        raise AdoptRefused(f"environment {name!r} already exists in {state.root}; nothing was adopted",
                           fix=f"adopt under another name, or remove it first (`upgrade-infra env destroy {name} --yes`)")
    if project and spec.project and project != spec.project:
        raise AdoptRefused(f"--project {project!r} differs from compose.project {spec.project!r} in "
                           f"{manifest.path.name}: later commands would refuse the project as renamed",
                           fix=f"set compose.project: {project} in {manifest.path.name}, or leave out --project")
    project = project or spec.project
    if not project:
        raise AdoptRefused(f"which Compose project? {manifest.path.name} sets no compose.project",
                           fix="pass --project NAME (the name `docker compose ls` shows)")

    engine = find_engine()
    driver = EngineDriver(engine)
    containers = driver.containers(project)
    if not containers:
        raise AdoptRefused(f"Compose project {project!r} does not exist on {engine.host} (no container)",
                           fix="start it first (`docker compose -p NAME up -d`), or pass the right --project")
    by_service: dict[str, Any] = {}
    from upgrade_infra.backends.compose.driver import SERVICE_LABEL

    for c in containers:
        by_service.setdefault(c.labels.get(SERVICE_LABEL, ""), c)
    pg_service = spec.postgres.service
    wanted = {pg_service: POSTGRES, **{(spec.services[n].service or n) if n in spec.services else n: n
                                       for n in manifest.services}}
    for cs_name, svc in wanted.items():
        c = by_service.get(cs_name)
        if c is None:
            raise AdoptRefused(f"Compose project {project!r} has no container for service {cs_name!r} ({svc})",
                               fix=f"start it: docker compose -p {project} up -d {cs_name}")
        h = driver.health(c)
        if h not in ("healthy", "running") or (h == "running" and (c.attrs.get("State") or {}).get("Health")):
            raise AdoptRefused(f"Compose project {project!r} is not running healthy: container {c.name} is {h}",
                               fix=f"bring it up (`docker compose -p {project} up -d --wait`), then adopt it")

    # versions from the image tags (or IDs)
    versions: dict[str, str] = {}
    images: dict[str, dict[str, str]] = {}
    for n, svc in manifest.services.items():
        cs = spec.services.get(n)
        if cs is None:
            raise AdoptRefused(f"service {n!r} has no compose.services.{n} in {manifest.path.name}",
                               fix="declare its image there (`upgrade-infra import compose` writes it)")
        c = by_service[cs.service or n]
        v = _version_of(driver, cs, list(svc.versions), c)
        if v is None:
            raise AdoptRefused(f"container {c.name} runs image {c.attrs['Config']['Image']}, which is no version of "
                               f"{n} that {manifest.path.name} knows ({', '.join(svc.versions)})",
                               fix=f"declare that release under services.{n}.versions (image {cs.image})")
        versions[n] = v
        images[n] = {"reference": c.attrs["Config"]["Image"], "id": c.attrs["Image"], "version": v}

    # volumes: the stack's names must be what the containers mount, and exist
    def expected(volume: str) -> str:
        vs = spec.volumes.get(volume)
        return vs.name if (vs is not None and vs.external and vs.name) else f"{project}_{volume}"

    volumes: dict[str, str] = {}
    pg_c = by_service[pg_service]
    pg_key = spec.postgres.volume or "pgdata"
    pg_mounts = _mounts(pg_c)
    pg_data = next((t for t, v in pg_mounts.items() if v == expected(pg_key)), None) or \
        next(iter(sorted(t for t in pg_mounts if t.startswith("/var/lib/postgresql"))), None)
    checks = [(pg_key, pg_c, pg_data)] + [(v, by_service[spec.services[n].service or n], target)
                                         for n in manifest.services for v, target in spec.services[n].volumes.items()]
    for key, c, target in checks:
        name_ = expected(key)
        if not driver.volume_exists(name_):
            raise AdoptRefused(f"volume {name_} ({key} of {manifest.path.name}) does not exist on {engine.host}: acting "
                               f"on project {project!r} under the stack's names would start it on a new, empty volume",
                               fix=f"make compose.{'postgres' if c is pg_c else 'services'} volumes name what "
                                   f"{c.name} mounts ({', '.join(sorted(_mounts(c).values())) or 'no named volume'})")
        mounted = _mounts(c).get(target or "")
        if mounted != name_:
            raise AdoptRefused(f"container {c.name} mounts {mounted or 'no named volume'} at {target}, not {name_} "
                               f"({key} of {manifest.path.name}): acting on it under the stack's names would switch "
                               "it to another volume", fix="make the stack's compose volumes match the project's")
        volumes[key] = name_

    # published ports
    ports: dict[str, int] = {}
    published: dict[str, str] = {}
    hosts: dict[str, str] = {}
    for cs_name, svc in wanted.items():
        inner = PG_PORT if svc == POSTGRES else (spec.services[svc].container_port or DEFAULT_CONTAINER_PORT)
        got = _published(by_service[cs_name], inner)
        if got is None:
            raise AdoptRefused(f"container {by_service[cs_name].name} publishes no host port for {inner}/tcp: the "
                               "tool reaches services through their published ports",
                               fix=f"publish it (ports: [\"127.0.0.1:PORT:{inner}\"]) and recreate it, then adopt")
        # recreated containers publish as the user's did (one interface, or all of them)
        ports[svc], published[svc] = got[1], (f"{got[0]}:{got[1]}:{inner}" if got[0] else f"{got[1]}:{inner}")
        hosts[svc] = got[0] or "127.0.0.1"  # where the tool reaches it
    nets = list((pg_c.attrs.get("NetworkSettings") or {}).get("Networks") or {})
    network = f"{project}_default" if f"{project}_default" in nets else (nets[0] if nets else f"{project}_default")

    # PostgreSQL as the user's superuser
    secret_name = spec.postgres.password_secret
    if not spec.postgres.user or not secret_name:
        raise AdoptRefused(f"{manifest.path.name} does not say how to reach the project's PostgreSQL",
                           fix="set compose.postgres.user (its superuser) and compose.postgres.password_secret")
    unset = [s.env for s in manifest.secrets.values() if s.env and not os.environ.get(s.env) and not s.file]
    if unset:
        raise AdoptRefused(f"the secret{'s' if len(unset) > 1 else ''} the project runs with "
                           f"{'are' if len(unset) > 1 else 'is'} not in this environment: ${', $'.join(unset)}",
                           fix=f"export {' '.join(unset)} with the values project {project!r} was started with")
    values: dict[str, str] = {}
    for k, s in manifest.secrets.items():
        if s.env and os.environ.get(s.env):
            values[k] = os.environ[s.env]
    if secret_name not in values:
        raise AdoptRefused(f"compose.postgres.password_secret {secret_name!r} names no secret read from the environment",
                           fix="declare it under secrets: with env: VAR")
    from psycopg.conninfo import make_conninfo

    from upgrade_infra.core import redact

    redact.register(values[secret_name])
    admin = make_conninfo(host=hosts[POSTGRES], port=ports[POSTGRES], user=spec.postgres.user,
                          password=values[secret_name], dbname="postgres", connect_timeout=10)
    try:
        major = int(sql.fetch_value(admin, "SHOW server_version_num")) // 10000
        missing = [db for db in manifest.postgres.databases if not sql.exists(admin, sql.DATABASE_EXISTS, db)]
    except BadInput:
        raise
    except Exception as e:  # noqa: BLE001 - wrong password, no answer: one line
        msg = redact.scrub(str(e).strip().splitlines()[0]) if str(e).strip() else type(e).__name__
        raise AdoptRefused(f"PostgreSQL of project {project!r} does not accept {spec.postgres.user} on port "
                           f"{ports[POSTGRES]}: {msg}",
                           fix=f"export the password it runs with as ${manifest.secrets[secret_name].env}") from None
    want_major = manifest.postgres.major
    if want_major and major != int(want_major):
        raise AdoptRefused(f"PostgreSQL of project {project!r} is major {major}, {manifest.path.name} says "
                           f"{want_major}", fix=f"set postgres.major: {major}, or adopt the right project")
    if missing:
        raise AdoptRefused(f"database{'s' if len(missing) > 1 else ''} {', '.join(missing)} of {manifest.path.name} "
                           f"missing in project {project!r}", fix="fix postgres.databases, or adopt the right project")

    # every check passed: record
    adopted = {
        "at": time.time(), "project": project, "network": network, "volumes": volumes,
        "containers": {svc: by_service[cs_name].name for cs_name, svc in wanted.items()},
        "container_ids": {svc: by_service[cs_name].id for cs_name, svc in wanted.items()},
        "ports": ports, "published": published, "hosts": hosts, "images": images,
        "pg_image": pg_c.attrs["Config"]["Image"], "pg_image_id": pg_c.attrs["Image"],
        "pg_command": list(pg_c.attrs["Config"].get("Cmd") or []), "pg_data": pg_data,
    }
    from upgrade_infra.core.lock import env_lock

    state.ensure()
    with env_lock(state, name, f"env adopt {name}"):
        if state.load_record(name) is not None:
            raise AdoptRefused(f"environment {name!r} already exists in {state.root}", fix="adopt under another name")
        for k, s in manifest.secrets.items():
            if k in values and s.generate:  # where a generated value would otherwise be made: the user's
                d = state.private_dir("secrets", name)
                fd = os.open(d / k, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(values[k])
        rec = EnvRecord(name=name, kind="production", backend="compose", versions=versions, created_at=time.time(),
                        backend_state={"project": project, "adopted": adopted, "pg_major": major})
        state.save_record(rec)
    env = ComposeEnvironment(manifest, state, rec)
    return {"environment": name, "project": project, "versions": versions,
            "images": {n: i["id"] for n, i in images.items()}, "containers": adopted["containers"],
            "volumes": volumes, "ports": ports, "network": network, "pg_major": major,
            "databases": sorted(manifest.postgres.databases), "placement": env.placement(),
            "total_s": round(time.monotonic() - t0, 3)}
