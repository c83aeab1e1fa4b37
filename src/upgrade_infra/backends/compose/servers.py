"""PostgreSQL servers of a Compose environment as image + volume (the ``ServerVolumes`` capability).

A major upgrade (``upgrade ENV --postgres 16``, :mod:`upgrade_infra.operations.pgmajor`) uses it:

- ``probe_image``: a short-lived container of the target image (data on a tmpfs, no network, removed
  at once) answers ``server_version_num`` and ``pg_available_extensions``;
- ``create_server``: a new volume ``<project>_pgdata-<op>`` and a side container of the target image on
  the project's network, not published, labelled with the project (``destroy`` removes both);
- ``load``: ``pg_dumpall`` of the live server piped into ``psql`` of the new one, run in the old server's
  container and streamed over the project network (see :data:`LOAD_SCRIPT` for why the source major's
  tools): nothing is written to disk but the new cluster;
- ``switch``: the live PostgreSQL container is removed, ``backend_state.pg_server`` names the new volume
  and image, and Compose starts the service on them (the volume declared ``external`` in the generated
  file); the volume it replaced is left untouched;
- ``side_server``: a server of a volume that is not live (a quarantined one), started for reading and
  reached from the tool's host at its address on the project network.
"""

from __future__ import annotations

import secrets as pysecrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upgrade_infra.backends.compose.driver import HELPER_LABEL, ONEOFF_LABEL, PROJECT_LABEL
from upgrade_infra.backends.interface import ServerVolumes
from upgrade_infra.core import fsutil
from upgrade_infra.core.errors import CommandFailed, OperationFailed

if TYPE_CHECKING:
    from upgrade_infra.backends.compose.environment import ComposeEnvironment

READY_TIMEOUT_S = 120
#: pg_dumpall's plain output recreates the superuser, which the new cluster already has: that one
#: statement is dropped, every other one must succeed (ON_ERROR_STOP). It runs in the OLD server's
#: container: the source major's pg_dumpall, streamed over the project network into the new server's psql.
#: Measured: the 16 image's pg_dump 16.2 dumps the `pg_attver` column options PostgreSQL 15.20 keeps on
#: every column (`ALTER COLUMN ... SET (pg_attver=...)`), which 16.2 rejects ("unrecognized parameter");
#: the 15 tools leave them out and the dump loads.
LOAD_SCRIPT = ('set -euo pipefail; pg_dumpall -h /run/postgresql -U postgres '
               '| sed -e "/^CREATE ROLE postgres;$/d" '
               '| psql -X -q -v ON_ERROR_STOP=1 -h "$UIX_TO" -p 5432 -U postgres -d postgres')
AVAILABLE = ("SELECT current_setting('server_version_num') || '|' || "
             "coalesce(string_agg(name || '=' || coalesce(default_version, ''), ',' ORDER BY name), '') "
             "FROM pg_available_extensions")


def short(op: str) -> str:
    return op.split("-", 1)[-1]


def repository(ref: str) -> str:
    """``upgrade-infra/postgres:15`` -> ``upgrade-infra/postgres`` (a registry port is no tag)."""
    ref = ref.split("@", 1)[0]
    head, _, last = ref.rpartition("/")
    if ":" in last:
        last = last.split(":", 1)[0]
    return f"{head}/{last}" if head else last


def parse_available(out: str) -> tuple[int, dict[str, str]]:
    """``160002|plpgsql=1.0,vector=0.8.0`` -> (16, {...})."""
    num, _, rest = out.strip().partition("|")
    exts = dict(x.split("=", 1) for x in rest.split(",") if "=" in x)
    return int(num) // 10000, exts


class ComposeServerVolumes(ServerVolumes):
    def __init__(self, env: ComposeEnvironment) -> None:
        self.env = env

    @property
    def client(self) -> Any:
        return self.env.driver.client

    def _labels(self, **extra: str) -> dict[str, str]:
        from upgrade_infra.backends.compose.environment import ENV_LABEL, STATE_LABEL

        return {PROJECT_LABEL: self.env.project, ENV_LABEL: self.env.name, STATE_LABEL: self.env.state_mark, **extra}

    def _image_id(self, ref: str) -> str | None:
        try:
            return self.client.images.get(ref).id
        except self.env.driver.docker.errors.ImageNotFound:
            return None

    # -- what runs now ---------------------------------------------------------------------------
    def current(self) -> dict[str, Any]:
        env = self.env
        c = env._container(env.pg_service)
        image_id = c.attrs["Image"] if c is not None else self._image_id(env.pg_image)
        return {"volume": env.pg_volume, "image": env.pg_image, "image_id": image_id, "major": env.database.major}

    def resolve_image(self, target: str) -> str:
        target = str(target).strip()
        if target.isdigit():
            return f"{repository(self.env.pg_image)}:{target}"
        return target

    def probe_image(self, image: str) -> dict[str, Any]:
        from upgrade_infra.backends.compose.environment import PG_DATA, postgres_command

        self.env.require_images([image])
        c = self.client.containers.create(
            image, postgres_command(self.env.manifest), environment={"POSTGRES_PASSWORD": pysecrets.token_urlsafe(12)},
            network_disabled=True, tmpfs={PG_DATA: ""}, labels=self._labels(**{HELPER_LABEL: "pg-probe",
                                                                               ONEOFF_LABEL: "True"}))
        try:
            c.start()
            self._wait_ready(c, image)
            r = self.env.driver.exec(c, ["psql", "-X", "-At", "-h", "/run/postgresql", "-U", "postgres", "-d",
                                         "postgres", "-c", AVAILABLE], user="postgres", timeout=60)
            if r.exit_code != 0:
                raise CommandFailed(f"listing the extensions of {image} failed: {r.stderr.strip()[-300:]}")
            major, exts = parse_available(r.stdout)
        finally:
            c.remove(force=True, v=True)
        return {"image": image, "image_id": self._image_id(image), "major": major, "extensions": exts}

    def _wait_ready(self, c: Any, what: str) -> float:
        t0 = time.monotonic()
        while True:
            c.reload()
            if c.status not in ("created", "running"):
                tail = c.logs(tail=8).decode(errors="replace").strip().replace("\n", " | ")
                raise OperationFailed(f"PostgreSQL of {what} exited while starting: {tail}",
                                      fix=f"docker logs {c.name}")
            if c.status == "running":
                r = self.env.driver.exec(c, ["pg_isready", "-q", "-h", "127.0.0.1", "-U", "postgres"], timeout=10)
                if r.exit_code == 0:
                    return round(time.monotonic() - t0, 3)
            if time.monotonic() - t0 > READY_TIMEOUT_S:
                raise OperationFailed(f"PostgreSQL of {what} not ready after {READY_TIMEOUT_S}s",
                                      fix=f"docker logs {c.name}")
            time.sleep(0.2)

    def free_bytes(self) -> tuple[int, str] | None:
        root = self.client.info().get("DockerRootDir")
        if not root or not Path(root).exists():
            return None  # a remote engine: its disk is not ours to see
        return fsutil.free_bytes(Path(root)), root

    # -- a new server beside the live one -----------------------------------------------------------
    def planned(self, op: str) -> dict[str, Any]:
        base = self.env.volume_name(self.env.spec.postgres.volume or "pgdata")
        return {"volume": f"{base}-{short(op)}", "container": f"{self.env.project}-{self.env.pg_service}-{short(op)}"}

    def create_server(self, op: str, image: str) -> dict[str, Any]:
        from upgrade_infra.backends.compose.environment import PG_DATA, PG_SUPERUSER, postgres_command

        env, driver = self.env, self.env.driver
        volume, name = self.planned(op)["volume"], self.planned(op)["container"]
        self.remove_server({"container": name}, volume=False)  # a half-started one from a killed run
        if not driver.volume_exists(volume):
            driver.create_volume(volume, self._labels(**{"org.upgrade-infra.pg-major": op}))
        c = self.client.containers.create(
            image, postgres_command(env.manifest), name=name, network=env.network,
            environment={"POSTGRES_USER": PG_SUPERUSER, "POSTGRES_PASSWORD": env.admin_password()},
            volumes={volume: {"bind": PG_DATA, "mode": "rw"}}, stop_signal="SIGINT",
            labels=self._labels(**{HELPER_LABEL: "pg-major", ONEOFF_LABEL: "True"}))
        c.start()
        ready = self._wait_ready(c, f"the new server ({image})")
        r = driver.exec(c, ["sh", "-c", 'echo "$(cat "$PGDATA/PG_VERSION")"'], user="postgres", timeout=30)
        return {"volume": volume, "container": name, "image": image, "image_id": self._image_id(image),
                "major": int(r.stdout.strip() or 0), "ready_s": ready}

    def load(self, server: dict[str, Any], timeout: float) -> dict[str, Any]:
        env = self.env
        old = env._container(env.pg_service)
        if old is None or old.status != "running":
            raise OperationFailed(f"the live PostgreSQL of {env.name} is not running: nothing to copy from",
                                  fix=f"upgrade-infra resume {env.name}")
        r = env.driver.exec(old, ["bash", "-c", LOAD_SCRIPT], user="postgres", timeout=timeout,
                            env={"UIX_TO": server["container"], "PGPASSWORD": env.admin_password()})
        if r.exit_code != 0:
            raise CommandFailed(f"pg_dumpall | psql into the new server failed (exit {r.exit_code}): "
                                f"{r.stderr.strip()[-500:]}", fix="see the message; nothing was switched")
        return {"seconds": r.seconds, "method": "pg_dumpall (old server's container) | psql into the new server"}

    def remove_server(self, server: dict[str, Any], *, volume: bool = True) -> None:
        name = server.get("container")
        if name:
            try:
                self.client.containers.get(name).remove(force=True)
            except self.env.driver.docker.errors.NotFound:
                pass
        if volume and server.get("volume"):
            self.remove_volume(server["volume"])

    def remove_volume(self, volume: str) -> bool:
        live = self.env.pg_volume
        if volume == live:
            raise OperationFailed(f"volume {volume} is the live PostgreSQL volume of {self.env.name}; not removed")
        return self.env.driver.remove_volume(volume)

    # -- switching ----------------------------------------------------------------------------------
    def problems(self, server: dict[str, Any]) -> list[str]:
        out = []
        if not self.env.driver.volume_exists(server["volume"]):
            out.append(f"volume {server['volume']} is gone")
        if not (self._image_id(server["image"]) or (server.get("image_id") and self._image_id(server["image_id"]))):
            out.append(f"image {server['image']} is gone from the engine")
        return out

    def _runnable_image(self, server: dict[str, Any]) -> str:
        """The server's image reference, or a tag of ours on its recorded ID when the tag moved since."""
        ref, want = server["image"], server.get("image_id")
        if not want or self._image_id(ref) == want:
            return ref
        pinned = f"upgrade-infra-pin/{self.env.project}-{self.env.pg_service}:{server.get('major')}"
        self.client.images.get(want).tag(pinned)
        return pinned

    def switch(self, server: dict[str, Any]) -> dict[str, Any]:
        env = self.env
        before = self.current()
        if before["volume"] == server["volume"]:  # switched already (a resumed step): make sure it runs
            env.start_database()
            prev = env.backend_state.get("pg_previous") or {}
            return prev if prev.get("volume") != server["volume"] else before
        if server.get("container"):
            self.remove_server({"container": server["container"]}, volume=False)
        env.stop_database()
        env.backend_state["pg_previous"] = before
        original = env.volume_name(env.spec.postgres.volume or "pgdata")
        target = {"volume": server["volume"], "image": self._runnable_image(server),
                  "image_id": server.get("image_id"), "major": server.get("major")}
        manifest_image = env.spec.postgres.image or f"upgrade-infra/postgres:{env.manifest.postgres.major or 15}"
        if server["volume"] == original and target["image"] == manifest_image:
            env.backend_state.pop("pg_server", None)  # back to what the manifest says
        else:
            env.backend_state["pg_server"] = target
        env.backend_state.pop("pg_major", None)  # read again from the server that starts
        env.save()
        env.start_database()
        return before

    @contextmanager
    def side_server(self, server: dict[str, Any]) -> Iterator[Callable[[str], str]]:
        from psycopg.conninfo import make_conninfo

        from upgrade_infra.backends.compose.environment import PG_DATA, PG_SUPERUSER, postgres_command

        env = self.env
        c = self.client.containers.create(
            self._runnable_image(server), postgres_command(env.manifest), network=env.network, stop_signal="SIGINT",
            volumes={server["volume"]: {"bind": PG_DATA, "mode": "rw"}},
            name=f"{env.project}-{env.pg_service}-side-{pysecrets.token_hex(3)}",
            labels=self._labels(**{HELPER_LABEL: "pg-side", ONEOFF_LABEL: "True"}))
        try:
            c.start()
            self._wait_ready(c, f"volume {server['volume']}")
            c.reload()
            ip = c.attrs["NetworkSettings"]["Networks"][env.network]["IPAddress"]
            pw = env.admin_password()
            yield lambda db: make_conninfo(host=ip, port=5432, user=PG_SUPERUSER, password=pw, dbname=db,
                                           connect_timeout=10)
        finally:
            try:
                c.stop(timeout=30)
            finally:
                c.remove(force=True)
