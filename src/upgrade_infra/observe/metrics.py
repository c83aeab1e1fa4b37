"""Health and monitoring: Prometheus text-format metrics of every environment, and a status loop.

Rollback monitoring comes from the operations journal: rollbacks per environment (automatic or
manual, by outcome), the last rollback's duration, end time and verdict against the budget, and
whether an operation was left unfinished (needs ``resume``). Example alert rules over these are in
``docs/monitoring/alerts.yml`` (checked with ``promtool`` in ``tests/test_alerts.py``).

``upgrade-infra metrics`` prints the exposition once (for a node_exporter textfile collector or a
cron job); ``--listen HOST:PORT`` serves it on ``/metrics`` for a Prometheus scrape. Every scrape
probes the services' health endpoints, so keep the scrape interval at 15 s or more.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from upgrade_infra.core import fsutil, sql
from upgrade_infra.restore import points as snapshots
from upgrade_infra.restore.meta import rp_dir
from upgrade_infra.staging.info import load_meta

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment
    from upgrade_infra.operations.session import Session

PREFIX = "upgrade_infra_"
HELP = {
    "environment_up": "1 when the environment's PostgreSQL runs and every service is healthy",
    "postgres_up": "1 when the environment's PostgreSQL runs",
    "service_up": "1 when the service process runs",
    "service_healthy": "1 when the service's health probe passes",
    "database_bytes": "size of each database of the environment (restore-point clones excluded)",
    "staging_environments": "staging environments in the state dir",
    "staging_expired_environments": "staging environments past their TTL (removed by `stage gc`)",
    "staging_last_sync_age_seconds": "seconds since the staging environment was last synced from its source",
    "staging_ttl_remaining_seconds": "seconds until the staging environment expires (negative: expired)",
    "restore_points": "restore points of the environment",
    "restore_points_bytes": "disk used by the environment's restore points (files and cloned databases)",
    "operations": "operations in the journal, by kind (upgrade, rollback, ...) and outcome",
    "rollbacks": "rollbacks of the environment, by trigger (auto: an upgrade's checks failed; manual) and outcome",
    "last_rollback_timestamp_seconds": "when the environment's last rollback ended (unix time)",
    "last_rollback_duration_seconds": "duration of the environment's last rollback (budgeted steps and the rest)",
    "last_rollback_succeeded": "1 when the environment's last rollback ended verified healthy",
    "rollback_budget_seconds": "the rollback time budget (policies.rollback_budget_s)",
    "operation_unfinished": "1 when an operation was interrupted and waits for `upgrade-infra resume ENV`",
    "scrape_duration_seconds": "time taken to collect these metrics",
}


@dataclass
class Sample:
    name: str
    value: float
    labels: dict[str, str] = field(default_factory=dict)


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(samples: list[Sample]) -> str:
    """The Prometheus text exposition format (version 0.0.4): HELP and TYPE once per metric family."""
    lines: list[str] = []
    seen: set[str] = set()
    for s in sorted(samples, key=lambda x: list(HELP).index(x.name) if x.name in HELP else 99):
        full = PREFIX + s.name
        if s.name not in seen:
            seen.add(s.name)
            lines += [f"# HELP {full} {HELP.get(s.name, s.name)}", f"# TYPE {full} gauge"]
        lab = ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(s.labels.items()))
        value = repr(float(s.value)) if not float(s.value).is_integer() else str(int(s.value))
        lines.append(f"{full}{{{lab}}} {value}" if lab else f"{full} {value}")
    return "\n".join(lines) + "\n"


def restore_points_bytes(env: Environment, live_sizes: dict[str, int]) -> tuple[int, int]:
    """(count, bytes) of the env's restore points: their directories plus their databases in the cluster."""
    points = snapshots.list_points(env.state, env.name)
    total = 0
    for rp in points:
        total += fsutil.tree_bytes(rp_dir(env.state, rp.id))
        st = snapshots.STRATEGIES.get(rp.strategy, None)  # a strategy no longer installed: its directory only
        total += sum(live_sizes.get(n, 0) for n in (st.cluster_databases(rp) if st else []))
    return len(points), total


def env_samples(env: Environment, now: float) -> list[Sample]:
    st = env.status()
    e = {"env": env.name}
    running = bool(st.postgres.get("running"))
    out = [Sample("environment_up", int(st.healthy), {**e, "kind": env.kind}), Sample("postgres_up", int(running), e)]
    for svc in st.services:
        lab = {**e, "service": svc.name, "version": svc.version}
        out += [Sample("service_up", int(svc.running), lab), Sample("service_healthy", int(svc.healthy), lab)]
    sizes: dict[str, int] = {}
    if running:
        try:
            sizes = sql.database_sizes(env.conninfo())
        except Exception:  # noqa: BLE001 - metrics never fail a scrape
            sizes = {}
    for db in env.manifest.postgres.databases:
        if db in sizes:
            out.append(Sample("database_bytes", sizes[db], {**e, "database": db}))
    n, nbytes = restore_points_bytes(env, sizes)
    out += [Sample("restore_points", n, e), Sample("restore_points_bytes", nbytes, e)]
    out += rollback_samples(env)
    rec = env.record
    if env.kind == "staging":
        if rec.synced_at:
            out.append(Sample("staging_last_sync_age_seconds", round(now - rec.synced_at, 1),
                              {**e, "source": rec.source or ""}))
        if rec.ttl_s is not None:
            out.append(Sample("staging_ttl_remaining_seconds", round(rec.created_at + rec.ttl_s - now, 1), e))
    return out


def rollback_samples(env: Environment) -> list[Sample]:
    """Operation and rollback figures of one environment, folded from its journal."""
    from upgrade_infra.core.journal import Journal

    e = {"env": env.name}
    ops = Journal(env.state, env.name).operations()
    counts: dict[tuple[str, str], int] = {}
    rollbacks: dict[tuple[str, str], int] = {}
    for o in ops:
        outcome = o.outcome or "unfinished"
        counts[(o.kind, outcome)] = counts.get((o.kind, outcome), 0) + 1
        if o.kind == "rollback":
            trigger = "auto" if o.parent else "manual"
            rollbacks[(trigger, outcome)] = rollbacks.get((trigger, outcome), 0) + 1
    out = [Sample("operations", n, {**e, "kind": k, "outcome": oc}) for (k, oc), n in sorted(counts.items())]
    out += [Sample("rollbacks", n, {**e, "trigger": t, "outcome": oc}) for (t, oc), n in sorted(rollbacks.items())]
    last = next((o for o in reversed(ops) if o.kind == "rollback" and o.finished), None)
    if last is not None:
        out += [Sample("last_rollback_timestamp_seconds", round(last.ended_at or 0, 3), e),
                Sample("last_rollback_duration_seconds", last.duration_s or 0, e),
                Sample("last_rollback_succeeded", int(last.outcome == "succeeded"), e)]
    out.append(Sample("operation_unfinished", int(any(not o.finished for o in ops)), e))
    return out


def collect(s: Session) -> list[Sample]:
    t0 = time.monotonic()
    now = time.time()
    envs = [e for e in s.environments() if s.state.load_record(e.name)]
    samples: list[Sample] = []
    for env in envs:
        samples += env_samples(env, now)
    staging = [e for e in envs if e.kind == "staging"]
    samples.append(Sample("staging_environments", len(staging)))
    samples.append(Sample("staging_expired_environments", sum(e.record.expired(now) for e in staging)))
    samples.append(Sample("rollback_budget_seconds", s.manifest.policies.rollback_budget_s))
    samples.append(Sample("scrape_duration_seconds", round(time.monotonic() - t0, 3)))
    return samples


def text(s: Session) -> str:
    return render(collect(s))


def serve(s: Session, host: str = "127.0.0.1", port: int = 9188) -> ThreadingHTTPServer:
    """An HTTP server answering ``GET /metrics``; call ``serve_forever()`` on it."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404, "try /metrics")
                return
            body = text(s).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return None

    return ThreadingHTTPServer((host, port), Handler)


def watch(s: Session, interval: float = 5.0, rounds: int | None = None) -> Iterator[dict[str, Any]]:
    """The health check loop behind ``status --watch``: every environment's status, every ``interval``."""
    n = 0
    while rounds is None or n < rounds:
        t0 = time.monotonic()
        envs = [e.status().to_dict() for e in s.environments() if s.state.load_record(e.name)]
        for row in envs:
            if row["kind"] == "staging":
                meta = load_meta(s.env(row["name"]))
                row["staging"] = {"status": meta.get("status"), "restore_point": meta.get("restore_point")}
        yield {"at": time.time(), "round": n + 1, "healthy": all(r["healthy"] for r in envs), "environments": envs}
        n += 1
        if rounds is None or n < rounds:
            time.sleep(max(0.0, interval - (time.monotonic() - t0)))
