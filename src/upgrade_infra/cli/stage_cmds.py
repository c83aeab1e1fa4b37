"""``stage create|sync|reset|list|destroy|gc``, ``metrics``, and the loop behind ``status --watch``."""

from __future__ import annotations

import json
import time

import typer
from rich.live import Live
from rich.table import Table

from upgrade_infra.cli.app import app, console, console_err, emit, esc, progress, session, state_of, sub
from upgrade_infra.core.errors import BadInput, CheckFailed
from upgrade_infra.core.redact import scrub
from upgrade_infra.observe import metrics
from upgrade_infra.stack import pairs
from upgrade_infra.staging import info as staging_info
from upgrade_infra.staging import lifecycle as staging
from upgrade_infra.staging.results import StagingReady
from upgrade_infra.staging.sync.progress import rich_progress

stage_app = sub("stage", "Staging environments: isolated, masked copies of production.")
VERSIONS = typer.Option([], "--versions", help="service=version (repeatable, or comma-separated)")
STRATEGY = typer.Option(None, "--strategy", "--sync", help="dump | physical | cow (default: dump from production, "
                        "physical from a staging env; cow: a reflink copy of the last cow restore point)")
STOP_SOURCE = typer.Option(False, "--stop-source", help="physical from a running production: accept its short outage")


def parse_versions(items: list[str]) -> dict[str, str]:
    return pairs.parse_versions(items, option="--versions")


def _done(r: StagingReady) -> None:
    console.print(f"staging [bold]{esc(r.environment)}[/] {r.action} from {esc(r.source)}: ready in {r.ready_s:.1f}s "
                  f"({r.strategy}: {r.mb} MB copied in {r.copy_s:.1f}s, {r.mb_per_s} MB/s); ports {r.ports}")
    t = Table(title="steps")
    for c in ("step", "seconds", "status"):
        t.add_column(c)
    for s in r.timeline:
        t.add_row(esc(s["step"]), f"{s['duration_s']:.2f}", esc(s["status"]))
    console.print(t)
    masked = (r.masking or {}).get("tables") or []
    if masked:
        console.print("masked: " + ", ".join(f"{m['database']}.{m['table']} ({', '.join(m['columns'])}: "
                                             f"{m['rows']} rows)" for m in masked), markup=False)
    leak = r.leak_check
    if leak:
        console.print(f"leak check: {'[green]no production value survives' if leak['ok'] else '[red]LEAK'}")


@stage_app.command("create")
def create(name: str = typer.Argument(None, help="default: staging (or staging-N)"),
           source: str = typer.Option("production", "--from", help="environment to copy"),
           versions: list[str] = VERSIONS,
           mask: bool = typer.Option(None, "--mask/--no-mask", help="default: staging.mask of the manifest"),
           ttl: str = typer.Option(None, "--ttl", help="e.g. 24h, 7d (default: staging.ttl)"),
           strategy: str = STRATEGY, stop_source: bool = STOP_SOURCE) -> None:
    """Copy an environment into a new, isolated staging env: data, masking, overrides, started, healthy."""
    with rich_progress(enabled=not state_of().json) as prog:
        r = staging.create(session(), name, source=source, versions=parse_versions(versions), mask=mask, ttl=ttl,
                           strategy=strategy, stop_source=stop_source, progress=prog)
    emit(r, _done)


@stage_app.command("sync")
def sync(name: str, versions: list[str] = VERSIONS,
         mask: bool = typer.Option(None, "--mask/--no-mask", help="default: as at creation"),
         strategy: str = STRATEGY, stop_source: bool = STOP_SOURCE) -> None:
    """Refresh a staging env from its source (its versions become the source's unless --versions)."""
    with rich_progress(enabled=not state_of().json) as prog:
        r = staging.sync_env(session(), name, versions=parse_versions(versions), mask=mask, strategy=strategy,
                             stop_source=stop_source, progress=prog)
    emit(r, _done)


@stage_app.command("reset")
def reset(name: str) -> None:
    """Back to the state right after the last sync (restore point swap, then smoke checks)."""
    with progress(f"resetting {name}"):
        r = staging.reset(session(), name)
    emit(r, lambda x: console.print(f"{name} reset to {x.restore_point}: ready in {x.ready_s:.2f}s "
                                    f"(wall {x.wall_s:.2f}s), versions {x.versions}", markup=False))


def _list_table(rows: list[dict]) -> None:
    t = Table(title="staging environments")
    for c in ("name", "source", "status", "age", "ttl left", "versions", "size", "last sync", "health"):
        t.add_column(c)
    for r in rows:
        health = "[green]healthy" if r["healthy"] else "[red]" + esc("; ".join(f"{k}: {v}" for k, v in r["services"].items()))
        t.add_row(esc(r["name"]), esc(r["source"] or ""), esc(r["status"]), r["age"], r["ttl_left"],
                  esc(", ".join(f"{k} {v}" for k, v in r["versions"].items())), f"{r['bytes'] / 1e6:.0f} MB",
                  staging_info._age(r["last_sync_age_s"]) + " ago" if r["last_sync_age_s"] is not None else "-",
                  health)
    console.print(t)


@stage_app.command("list")
def list_() -> None:
    """Staging envs with age, TTL left, versions, size on disk, last sync and health."""
    rows = staging_info.list_envs(session())
    emit(rows, _list_table)


@stage_app.command("destroy")
def destroy(name: str) -> None:
    """Stop and remove a staging env (processes, cluster, data, secrets, restore points)."""
    with progress(f"destroying {name}"):
        r = staging.destroy(session(), name)
    emit(r, lambda x: console.print(f"{name} destroyed in {x.total_s:.1f}s"))


@stage_app.command("gc")
def gc(dry_run: bool = typer.Option(False, "--dry-run", help="only list what would be removed")) -> None:
    """Remove expired staging envs (and ones whose creation never finished)."""
    r = staging.gc(session(), dry_run=dry_run)
    emit(r, lambda x: console.print("\n".join(f"{'would remove' if dry_run else 'removed'} {e['environment']}: "
                                              f"{e['reason']}" for e in x["removed"]) or "nothing to remove",
                                    markup=False))


@app.command("metrics")
def metrics_cmd(listen: str = typer.Option(None, "--listen", help="HOST:PORT: serve /metrics until Ctrl-C")) -> None:
    """Prometheus text-format metrics: environment up, service health, last sync age, staging count,
    disk used by restore points."""
    if not listen:
        text = scrub(metrics.text(session()))
        emit({"metrics": text}, lambda d: print(d["metrics"], end=""))  # --json: one document, the text inside
        return
    host, _, port = listen.rpartition(":")
    server = metrics.serve(session(), host or "127.0.0.1", int(port))
    console_err.print(f"serving http://{host or '127.0.0.1'}:{port}/metrics (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _watch_table(snap: dict) -> Table:
    t = Table(title=f"environments at {time.strftime('%H:%M:%S', time.localtime(snap['at']))} "
                    f"(round {snap['round']}, Ctrl-C stops)")
    for c in ("env", "kind", "postgres", "service", "version", "health"):
        t.add_column(c)
    for st in snap["environments"]:
        pg = f"{'up' if st['postgres']['running'] else '[red]down'} :{st['postgres']['port']}"
        for i, s in enumerate(st["services"] or [{}]):
            t.add_row(esc(st["name"]) if i == 0 else "", st["kind"] if i == 0 else "", pg if i == 0 else "",
                      esc(s.get("name", "")), esc(s.get("version", "")),
                      ("[green]healthy" if s.get("healthy") else f"[red]{esc(s.get('detail', ''))}") if s else "")
    return t


def watch_status(interval: float, rounds: int | None = None) -> None:
    """``status --watch``: redraw every ``interval`` s (one JSON line per round with --json)."""
    if interval <= 0:
        raise BadInput("--interval must be positive", fix="e.g. --interval 5")
    loop = metrics.watch(session(), interval, rounds)
    try:
        if state_of().json:
            for snap in loop:
                print(scrub(json.dumps(snap, default=str)), flush=True)
            return
        with Live(console=console, auto_refresh=False) as live:
            for snap in loop:
                live.update(_watch_table(snap), refresh=True)
    except KeyboardInterrupt:
        return
    if rounds is not None and not snap["healthy"]:
        raise CheckFailed("not every environment is healthy")
