"""Finding a container engine, and starting a private one (tests, CI, benchmarks).

``find_engine()`` answers the engine the user's Docker client would use: ``DOCKER_HOST``, else
``/var/run/docker.sock``. When none answers it raises :class:`EngineUnreachable`, which says how to
start one.

``start_private_engine(root, name, bip)`` starts Debian's ``dockerd`` (as root) with everything it
owns under directories named after ``name``: data root ``ROOT/NAME/data`` (images, volumes; kept
between runs so built images stay cached), exec root ``/run/upgrade-infra-docker/NAME/``, socket
``/run/upgrade-infra-docker/NAME.sock``, pid file ``/run/upgrade-infra-docker/NAME.pid``, log
``ROOT/NAME/dockerd.log``. It never touches ``/var/run/docker.sock`` or ``docker0``: its default
bridge is a bridge of its own (``uix-NAME``, address ``bip``) and the networks Compose creates come
from its own address pool (``pool``), so two private engines with distinct ``bip``/``pool`` run side
by side. ``Engine.stop()`` removes its containers, stops the daemon by its pid file (and what it
started), and deletes the bridge.

Command line (prints JSON; ``DOCKER_HOST`` for a client is in it)::

    python -m upgrade_infra.backends.compose.engine start --root /var/lib/upgrade-infra-docker \
        --name ci --bip 172.31.250.1/24
    python -m upgrade_infra.backends.compose.engine stop --root /var/lib/upgrade-infra-docker --name ci
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from upgrade_infra.core import runner
from upgrade_infra.core.errors import BadInput, OperationFailed

DEFAULT_SOCKET = "/var/run/docker.sock"
RUN_DIR = Path("/run/upgrade-infra-docker")
DEFAULT_ROOT = Path("/var/lib/upgrade-infra-docker")
START_HINT = ("start one: `sudo systemctl start docker` (Docker Engine; or `sudo dockerd &`), or as root "
              "`apt-get install -y docker.io` then `python -m upgrade_infra.backends.compose.engine start "
              "--name NAME --bip 172.31.X.1/24` and export the DOCKER_HOST it prints; or point DOCKER_HOST "
              "at a running engine (a Podman socket works where it honours the Docker API)")


class EngineUnreachable(BadInput):
    """No container engine answers where the client looks for one."""


class EngineStartFailed(OperationFailed):
    """A private dockerd did not come up."""


class MissingExtra(BadInput):
    """The Docker SDK for Python is not installed."""


def docker_sdk() -> Any:
    """The ``docker`` package (Docker SDK for Python), or a clear error naming the extra."""
    try:
        import docker
    except ImportError:
        raise MissingExtra("the Compose backend needs the Docker SDK for Python (package `docker`)",
                           fix="pip install 'upgrade-infra[compose]'") from None
    return docker


@dataclass
class Engine:
    """A Docker Engine API endpoint; for a private engine also what is needed to stop it."""

    host: str
    name: str | None = None
    root: Path | None = None
    pidfile: Path | None = None
    bridge: str | None = None
    start_seconds: float | None = None
    reused: bool = False
    version: str | None = None
    _client: Any = field(default=None, repr=False, compare=False)

    @property
    def private(self) -> bool:
        return self.pidfile is not None

    def env(self) -> dict[str, str]:
        """Variables that point a client (docker, docker compose, the SDK) at this engine."""
        return {"DOCKER_HOST": self.host}

    def client(self, timeout: float = 120) -> Any:
        if self._client is None:
            self._client = docker_sdk().DockerClient(base_url=self.host, timeout=timeout)
        return self._client

    def ping(self, timeout: float = 3) -> bool:
        return ping(self.host, timeout)

    def stop(self, *, remove_containers: bool = True, timeout: float = 30) -> str:
        """Stop a private engine (no-op for one this process did not start). Returns how it ended."""
        if not self.private:
            return "not private"
        assert self.root is not None and self.name is not None
        if self._client is not None:
            self._client.close()
            self._client = None
        return stop_private_engine(self.root, self.name, remove_containers=remove_containers, timeout=timeout)

    def to_dict(self) -> dict[str, Any]:
        return {"DOCKER_HOST": self.host, "name": self.name, "root": str(self.root) if self.root else None,
                "pidfile": str(self.pidfile) if self.pidfile else None, "bridge": self.bridge,
                "start_seconds": self.start_seconds, "reused": self.reused, "version": self.version}


def ping(host: str, timeout: float = 3) -> bool:
    """Whether an Engine API answers at ``host`` (``unix:///...`` or ``tcp://...``)."""
    docker = docker_sdk()
    try:
        c = docker.DockerClient(base_url=host, timeout=timeout)
    except Exception:
        return False
    try:
        return bool(c.ping())
    except Exception:
        return False
    finally:
        c.close()


def engine_host(environ: dict[str, str] | None = None) -> str:
    """Where a Docker client looks: DOCKER_HOST, else the default socket."""
    env = os.environ if environ is None else environ
    return env.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"


def find_engine(environ: dict[str, str] | None = None, timeout: float = 3) -> Engine:
    """The engine the user's client would use, checked to answer; :class:`EngineUnreachable` otherwise."""
    host = engine_host(environ)
    if not ping(host, timeout):
        where = "DOCKER_HOST" if (environ if environ is not None else os.environ).get("DOCKER_HOST") else \
            "the default socket"
        raise EngineUnreachable(f"no container engine answers at {host} ({where})", fix=START_HINT, host=host)
    e = Engine(host=host)
    e.version = e.client().version().get("Version")
    return e


# -- private engine ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PrivatePaths:
    data_root: Path
    exec_root: Path
    socket: Path
    pidfile: Path
    log: Path
    bridge: str


def private_paths(root: Path, name: str, run_dir: Path = RUN_DIR) -> PrivatePaths:
    if not name or not name.replace("-", "").isalnum() or len(name) > 10:
        raise BadInput(f"private engine name {name!r}: use 1-10 letters, digits or '-'",
                       fix="e.g. --name tests")
    root = Path(root)
    return PrivatePaths(data_root=root / name / "data", exec_root=run_dir / name, socket=run_dir / f"{name}.sock",
                        pidfile=run_dir / f"{name}.pid", log=root / name / "dockerd.log",
                        bridge=f"uix-{name}")


def default_pool(bip: str) -> str:
    """Compose networks' address pool derived from the bridge address: 172.31.X.1/24 -> 10.X.0.0/16 in /24s.
    Distinct bridges give distinct pools, so two private engines never hand out the same subnet."""
    net = ipaddress.ip_interface(bip)
    third = int(str(net.ip).split(".")[2])
    return f"base=10.{third}.0.0/16,size=24"


def dockerd_argv(dockerd: str, paths: PrivatePaths, pool: str, *, iptables: bool = True) -> list[str]:
    """The private dockerd's command line (pure)."""
    return [dockerd, "--data-root", str(paths.data_root), "--exec-root", str(paths.exec_root),
            "--host", f"unix://{paths.socket}", "--pidfile", str(paths.pidfile),
            "--bridge", paths.bridge, "--default-address-pool", pool,
            f"--iptables={'true' if iptables else 'false'}", "--storage-driver", "overlay2",
            "--log-level", "warn"]


def _dockerd() -> str:
    path = shutil.which("dockerd") or ("/usr/sbin/dockerd" if Path("/usr/sbin/dockerd").exists() else None)
    if path is None:
        raise EngineUnreachable("dockerd is not installed",
                                fix="as root: apt-get install -y docker.io (Debian's Docker Engine)")
    return path


def _ensure_bridge(name: str, bip: str) -> None:
    iface = ipaddress.ip_interface(bip)
    if iface.ip == iface.network.network_address:
        raise BadInput(f"bip {bip}: give the bridge's own address, e.g. {iface.network.network_address + 1}/"
                       f"{iface.network.prefixlen}", fix="--bip 172.31.X.1/24")
    shown = runner.run(["ip", "-j", "addr", "show", "dev", name], check=False)
    if shown.returncode != 0:
        runner.run(["ip", "link", "add", "name", name, "type", "bridge"])
        shown = runner.run(["ip", "-j", "addr", "show", "dev", name])
    have = {f"{a['local']}/{a['prefixlen']}" for link in json.loads(shown.stdout or "[]")
            for a in link.get("addr_info", []) if a.get("family") == "inet"}
    if str(iface) not in have:
        for a in have:
            runner.run(["ip", "addr", "del", a, "dev", name])
        runner.run(["ip", "addr", "add", str(iface), "dev", name])
    runner.run(["ip", "link", "set", name, "up"])


def _delete_bridge(name: str) -> None:
    runner.run(["ip", "link", "delete", name, "type", "bridge"], check=False)


def _daemon_pid(paths: PrivatePaths) -> int | None:
    """The pid in the pid file if that process is a dockerd serving this socket (never anyone else's)."""
    import psutil

    try:
        pid = int(paths.pidfile.read_text().strip())
        cmd = psutil.Process(pid).cmdline()
    except (OSError, ValueError, psutil.Error):
        return None
    if cmd and Path(cmd[0]).name == "dockerd" and f"unix://{paths.socket}" in cmd:
        return pid
    return None


def start_private_engine(root: Path | str = DEFAULT_ROOT, name: str = "tests", bip: str = "172.31.250.1/24", *,
                         pool: str | None = None, run_dir: Path = RUN_DIR, timeout: float = 60,
                         iptables: bool = True) -> Engine:
    """Start (or reuse, when it already answers) a private dockerd; see the module docstring."""
    if os.geteuid() != 0:
        raise BadInput("a private dockerd needs root (it manages a bridge, iptables and mounts)",
                       fix="run as root, or start Docker Engine and set DOCKER_HOST")
    dockerd = _dockerd()
    paths = private_paths(Path(root), name, run_dir)
    host = f"unix://{paths.socket}"
    pid = _daemon_pid(paths)
    if pid is not None and ping(host):
        e = Engine(host=host, name=name, root=Path(root), pidfile=paths.pidfile, bridge=paths.bridge,
                   start_seconds=0.0, reused=True)
        e.version = e.client().version().get("Version")
        return e
    if pid is not None:  # a daemon of ours that does not answer: stop it before starting anew
        stop_private_engine(root, name, run_dir=run_dir)
    for d in (paths.data_root, paths.exec_root):
        d.mkdir(parents=True, exist_ok=True, mode=0o710)
    for stale in (paths.socket, paths.pidfile):
        stale.unlink(missing_ok=True)
    t0 = time.monotonic()
    _ensure_bridge(paths.bridge, bip)
    path = os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    handle = runner.spawn(dockerd_argv(dockerd, paths, pool or default_pool(bip), iptables=iptables),
                          env=runner.base_env({"PATH": path}), cwd=paths.data_root.parent, log_path=paths.log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ping(host, timeout=2):
            break
        if not handle.alive():
            _delete_bridge(paths.bridge)
            raise EngineStartFailed(f"dockerd {name} exited while starting: {_tail(paths.log)}",
                                    fix=f"see {paths.log}")
        time.sleep(0.1)
    else:
        stop_private_engine(root, name, run_dir=run_dir)
        raise EngineStartFailed(f"dockerd {name} did not answer within {timeout:.0f}s: {_tail(paths.log)}",
                                fix=f"see {paths.log}")
    e = Engine(host=host, name=name, root=Path(root), pidfile=paths.pidfile, bridge=paths.bridge,
               start_seconds=round(time.monotonic() - t0, 2))
    e.version = e.client().version().get("Version")
    return e


def stop_private_engine(root: Path | str = DEFAULT_ROOT, name: str = "tests", *, run_dir: Path = RUN_DIR,
                        remove_containers: bool = True, timeout: float = 30) -> str:
    """Stop the private dockerd ``name`` by its pid file: its containers removed first (a private engine
    holds only what its owner made; volumes and images are kept), SIGTERM to dockerd (it stops its
    containerd), SIGKILL to its process group after ``timeout``; then remove its bridge and socket.
    The data root (images, volumes) is kept. Returns how it ended."""
    import psutil

    paths = private_paths(Path(root), name, run_dir)
    pid = _daemon_pid(paths)
    how = "not running"
    if pid is not None and remove_containers:
        _remove_containers(f"unix://{paths.socket}")
    if pid is not None:
        try:
            create = psutil.Process(pid).create_time()
        except psutil.Error:
            create = None
        os.kill(pid, signal.SIGTERM)
        how = "terminated"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and psutil.pid_exists(pid) and runner.live_threads(pid):
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.1)
        if create is not None:  # whatever is left of its group (containerd, shims): the runner stops it
            if runner.stop_process(runner.ProcessHandle(pid, create), timeout=5) == "killed":
                how = "killed"
    leftovers = _processes_under(paths.exec_root)
    for p in leftovers:
        try:
            p.kill()
        except psutil.Error:
            pass
    _delete_bridge(paths.bridge)
    for f in (paths.socket, paths.pidfile):
        f.unlink(missing_ok=True)
    if not _mounted_under(paths.exec_root):  # runtime state only (containerd sockets, netns dir)
        shutil.rmtree(paths.exec_root, ignore_errors=True)
    return how


def _mounted_under(path: Path) -> bool:
    try:
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return True
    return any(m == str(path) or m.startswith(f"{path}/") for m in mounts)


def _remove_containers(host: str) -> None:
    docker = docker_sdk()
    try:
        c = docker.DockerClient(base_url=host, timeout=30)
        for ctr in c.containers.list(all=True):
            ctr.remove(force=True, v=False)
        c.close()
    except Exception:  # not answering: the daemon's own shutdown stops them
        pass


def _processes_under(exec_root: Path) -> list:
    """Processes whose command line names this engine's exec root (containerd, shims): none after a stop."""
    import psutil

    out = []
    needle = str(exec_root)
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(needle in a for a in (p.info["cmdline"] or [])):
                out.append(p)
        except psutil.Error:
            continue
    return out


def _tail(path: Path, n: int = 3) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-n:])
    except OSError:
        return "(no log)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m upgrade_infra.backends.compose.engine")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for cmd in ("start", "stop", "find"):
        p = sub.add_parser(cmd)
        if cmd != "find":
            p.add_argument("--root", type=Path, default=DEFAULT_ROOT)
            p.add_argument("--name", default="tests")
        if cmd == "start":
            p.add_argument("--bip", default="172.31.250.1/24")
            p.add_argument("--pool", default=None)
    a = ap.parse_args(argv)
    try:
        if a.cmd == "start":
            print(json.dumps(start_private_engine(a.root, a.name, a.bip, pool=a.pool).to_dict()))
        elif a.cmd == "stop":
            print(json.dumps({"stopped": stop_private_engine(a.root, a.name)}))
        else:
            print(json.dumps(find_engine().to_dict()))
    except BadInput as e:
        print(e.one_line(), file=sys.stderr)
        return e.exit_code
    except OperationFailed as e:
        print(e.one_line(), file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
