"""Run the real migration the way production will, under the lock sampler, with a timeout.

``start`` mode (services declaring ``migrates_on_start``): the new version is started and the
migration is the time from start until its readiness probe passes. ``command`` mode: the service's
declared ``migrate`` command, then the service is started. A service whose process dies is a
crash; one not ready within ``migration.timeout_s`` is a hang: it is stopped and the database
sessions it left behind (a backend stays in its statement after its client is gone) are terminated.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from upgrade_infra.backends import health
from upgrade_infra.core import sql
from upgrade_infra.core.errors import CommandFailed

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment

POLL_S = 0.1


def mode_for(env: Environment, service: str, requested: str | None = None) -> str:
    spec = env.manifest.service(service)
    if requested:
        return requested
    return "start" if spec.migrates_on_start or not spec.migrate else "command"


def _ready(env: Environment, service: str) -> health.ProbeResult:
    return env.probe(service)  # readiness with its declared check


def _running(env: Environment, service: str) -> bool:
    return any(s.name == service and s.running for s in env.status(probe=False).services)


def _log_tail(env: Environment, service: str, n: int = 6) -> list[str]:
    return env.log_tail(service, n)


def migrate_service(env: Environment, service: str, version: str, mode: str, deadline: float) -> dict[str, Any]:
    """Bring one service to ``version``; returns ``{status: ok|crashed|timeout, seconds, detail}``."""
    t0 = time.monotonic()
    env.record.versions[service] = version
    env.save()
    if mode == "command":
        try:
            res = env.run_job(service, "migrate", version=version,
                              timeout=max(1.0, deadline - time.monotonic()))
        except CommandFailed as e:  # the timeout of runner.run
            return {"status": "timeout", "seconds": round(time.monotonic() - t0, 3), "detail": e.message}
        if res.returncode != 0:
            tail = (res.stderr or res.stdout).strip().splitlines()[-4:]
            return {"status": "crashed", "seconds": round(time.monotonic() - t0, 3),
                    "detail": f"migrate exited {res.returncode}", "log_tail": tail}
        migrated_s = time.monotonic() - t0
        env.start_services([service], wait=True)
        return {"status": "ok", "seconds": round(migrated_s, 3), "ready_s": round(time.monotonic() - t0, 3)}
    env.start_services([service], wait=False)
    while True:
        if _ready(env, service).ok:
            return {"status": "ok", "seconds": round(time.monotonic() - t0, 3)}
        if not _running(env, service):
            return {"status": "crashed", "seconds": round(time.monotonic() - t0, 3),
                    "detail": f"{service} {version} exited while migrating", "log_tail": _log_tail(env, service)}
        if time.monotonic() > deadline:
            return {"status": "timeout", "seconds": round(time.monotonic() - t0, 3),
                    "detail": f"{service} {version} not ready after {time.monotonic() - t0:.0f}s (migration.timeout_s)",
                    "log_tail": _log_tail(env, service)}
        time.sleep(POLL_S)


def run_migration(env: Environment, to: dict[str, str], timeout_s: float, mode: str | None = None) -> dict[str, Any]:
    """Migrate every service in ``to`` (dependency order); stops at the first crash or timeout."""
    t0 = time.monotonic()
    deadline = t0 + timeout_s
    out: dict[str, Any] = {"status": "ok", "services": {}, "mode": None}
    for svc in [s for s in env.manifest.start_order() if s in to]:
        m = mode_for(env, svc, mode)
        out["mode"] = m if out["mode"] in (None, m) else "mixed"
        r = migrate_service(env, svc, to[svc], m, deadline)
        r.update({"to": to[svc]})
        out["services"][svc] = r
        if r["status"] != "ok":
            out.update(status=r["status"], detail=r.get("detail"))
            abandon(env)
            break
    out["duration_s"] = round(time.monotonic() - t0, 3)
    return out


def abandon(env: Environment) -> dict[str, Any]:
    """After a crash or hang: stop the services and end the database sessions they left behind."""
    stopped = env.stop_services()
    ended = {db: sql.terminate_backends(env.conninfo(), db) for db in env.manifest.postgres.databases}
    return {"stopped": stopped, "sessions_ended": ended}
