"""Run the services as real subprocesses against real databases."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

PA_STACK_DIR = Path(__file__).resolve().parents[2]  # the directory containing pa_apps
_SCRUB = ("DATABASE_URL", "ASSISTANT_URL")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env() -> dict[str, str]:
    """The caller's environment without any stack settings leaking in."""
    return {k: v for k, v in os.environ.items() if not (k.startswith("PA_") or k in _SCRUB)}


def _finish(proc: subprocess.Popen, check: bool, timeout: float) -> subprocess.CompletedProcess:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise
    result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, proc.args[1:]))} failed ({result.returncode}):\n{err}")
    return result


class ServiceProcess:
    def __init__(self, service: str, release: str, env: dict[str, str], log_path: Path, port: int | None = None):
        self.service, self.release, self.env = service, release, env
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", f"pa_apps.{self.service}", "serve",
                 "--release", self.release, "--port", str(self.port)],
                cwd=PA_STACK_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_ready(self, timeout: float = 30.0) -> float:
        """Poll /readyz until 200; returns seconds waited.  Raises with the log tail."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.service} exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.service} not ready after {timeout}s:\n{self.log()[-3000:]}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


class Stack:
    """Two fresh databases, data dirs and the service processes of one stack."""

    def __init__(self, cluster, workdir: Path, secret: str = "test-secret-key"):
        tag = uuid.uuid4().hex[:10]
        self.assistant_db = cluster.create_database(f"pa_{tag}_assistant")
        self.automations_db = cluster.create_database(f"pa_{tag}_automations")
        self.workdir = Path(workdir)
        self.data_dir = self.workdir / "assistant-data"
        self.automations_data_dir = self.workdir / "automations-data"
        self.secret = secret
        self.assistant_url = "http://127.0.0.1:9"  # until an assistant is served
        self.processes: list[ServiceProcess] = []

    def env(self, service: str, **overrides: str) -> dict[str, str]:
        env = base_env()
        if service == "assistant":
            env.update(DATABASE_URL=self.assistant_db, PA_DATA_DIR=str(self.data_dir))
        else:
            env.update(
                DATABASE_URL=self.automations_db, PA_SECRET_KEY=self.secret,
                ASSISTANT_URL=self.assistant_url, PA_DATA_DIR=str(self.automations_data_dir),
            )
        env.update(overrides)
        return env

    def popen(self, service: str, *args: str, **env) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", f"pa_apps.{service}", *args], cwd=PA_STACK_DIR,
            env=self.env(service, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def cli(self, service: str, *args: str, check: bool = True, timeout: float = 60, **env) -> subprocess.CompletedProcess:
        return _finish(self.popen(service, *args, **env), check, timeout)

    def both(self, *args: str, check: bool = True, timeout: float = 60, **env) -> list[subprocess.CompletedProcess]:
        """Run the same subcommand for both services, in parallel."""
        procs = [self.popen(service, *args, **env) for service in ("assistant", "automations")]
        return [_finish(p, check, timeout) for p in procs]

    def migrate(self, release: str) -> None:
        self.both("migrate", "--release", release)

    def serve(self, service: str, release: str, wait: bool = True, **env) -> ServiceProcess:
        name = f"{service}-{release}-{len(self.processes)}.log"
        process = ServiceProcess(service, release, self.env(service, **env), self.workdir / "logs" / name)
        self.processes.append(process.start())
        if service == "assistant":
            self.assistant_url = process.url
        if wait:
            process.wait_ready()
        return process

    def seed(self, size_mb: float = 1.0) -> dict:
        result = subprocess.run(
            [sys.executable, "-m", "pa_apps.seed", "--assistant-db", self.assistant_db,
             "--automations-db", self.automations_db, "--data-dir", str(self.data_dir),
             "--size-mb", str(size_mb)],
            cwd=PA_STACK_DIR, env={**base_env(), "PA_SECRET_KEY": self.secret},
            capture_output=True, text=True, timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"seed failed ({result.returncode}):\n{result.stderr}")
        return json.loads(result.stdout.strip().splitlines()[-1])

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()
