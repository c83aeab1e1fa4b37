"""``env up|down|status|destroy`` and the all-environments ``status``."""

from __future__ import annotations

import typer
from rich.table import Table

from upgrade_infra.cli.app import ENV_NAME, app, console, emit, esc, progress, session, sub
from upgrade_infra.core.errors import BadInput, CheckFailed
from upgrade_infra.restore.datadirs import disk_use

env_app = sub("env", "Bring environments up and down, and show their state.")


def with_restore_points(env, st: dict) -> dict:
    """A status dict plus the disk its restore points take (files; clone databases are in postgres)."""
    st["restore_points"] = disk_use(env.state, env.name)
    return st


def _rp_cell(st: dict) -> str:
    rp = st.get("restore_points")
    if not rp or not rp["count"]:
        return ""
    kept = st["postgres"].get("kept_databases_bytes") or 0
    return (f"{rp['count']}: {rp['disk_bytes'] / 1e6:.1f} MB on disk"
            + (f" (spares {rp['spare_bytes'] / 1e6:.1f} MB)" if rp["spare_bytes"] else "")
            + (f" + {kept / 1e6:.1f} MB databases" if kept else ""))


def _status_table(rows: list[dict]) -> None:
    t = Table(title="environments")
    for col in ("env", "kind", "postgres", "service", "version", "port", "health", "databases", "restore points"):
        t.add_column(col)
    for st in rows:
        dbs = ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in st["databases"].items())
        pg = f"{'up' if st['postgres']['running'] else 'down'} :{st['postgres']['port']}"
        for i, s in enumerate(st["services"] or [{}]):
            t.add_row(esc(st["name"]) if i == 0 else "", st["kind"] if i == 0 else "", pg if i == 0 else "",
                      esc(s.get("name", "")), esc(s.get("version", "")), str(s.get("port", "")),
                      ("[green]healthy" if s.get("healthy") else f"[red]{esc(s.get('detail', ''))}") if s else "",
                      esc(dbs) if i == 0 else "", _rp_cell(st) if i == 0 else "")
    console.print(t)


@env_app.command("up")
def up(name: str = typer.Argument(..., callback=ENV_NAME), no_seed: bool = typer.Option(False, "--no-seed", help="skip the manifest's seed step"),
       seed_mb: float = typer.Option(None, "--seed-mb", help="seed size in MB (default: seed.size_mb)")) -> None:
    """Create (first time) and start an environment: its PostgreSQL, then its services in order."""
    env = session().env(name)
    with progress(f"bringing {name} up"):
        result = env.up(seed=not no_seed, seed_mb=seed_mb)
    result.status = env.status().to_dict()
    emit(result, lambda r: (console.print(f"{esc(name)} up in {r.total_s:.1f}s"
                                          + (f", seeded {r.seed['bytes_added'] / 1e6:.0f} MB at "
                                             f"{r.seed['mb_per_s']} MB/s" if r.seed else "")),
                            _status_table([r.status])))


@env_app.command("down")
def down(name: str = typer.Argument(..., callback=ENV_NAME)) -> None:
    """Stop an environment's services (SIGTERM, then SIGKILL) and its PostgreSQL."""
    env = session().env(name)
    with progress(f"stopping {name}"):
        result = env.down()
    emit(result, lambda r: console.print(f"{name} down in {r.total_s:.1f}s: {r.services}",
                                         markup=False))


@env_app.command("adopt")
def adopt(name: str = typer.Argument(..., callback=ENV_NAME),
          project: str = typer.Option(None, "--project", help="the running Compose project (default: compose.project "
                                      "of stack.yaml)")) -> None:
    """Take over a Compose project you already run (docker compose up), without recreating or restarting
    anything: records its container, volume and network names, published ports, versions (from the image
    tags) and image IDs, and PostgreSQL access as your own superuser (compose.postgres.user, the password
    from the environment variable of compose.postgres.password_secret). Refuses (exit 2, nothing written)
    a project that does not exist or is not running healthy, an existing environment, an image tag the
    manifest does not know, a stack volume name that does not exist, a PostgreSQL major other than the
    manifest's or a missing database. Later commands drive the project under your names; `env destroy`
    never removes its volumes without --delete-volumes."""
    from upgrade_infra.operations.release import adopt as adopt_project

    with progress(f"adopting {name}"):
        r = adopt_project(session(), name, project)
    emit(r, lambda x: console.print(
        f"adopted Compose project {x['project']} as {x['environment']}: "
        + ", ".join(f"{k} {v}" for k, v in x["versions"].items())
        + f"; volumes {', '.join(x['volumes'].values())}; PostgreSQL {x['pg_major']}", markup=False))


@env_app.command("destroy")
def destroy(name: str = typer.Argument(..., callback=ENV_NAME),
            yes: bool = typer.Option(False, "--yes", help="confirm: the environment's data is deleted"),
            delete_volumes: bool = typer.Option(False, "--delete-volumes",
                                                help="adopted projects only: remove your named volumes too")) -> None:
    """Remove an environment for good, production included: its restore points, quarantines, services,
    PostgreSQL and its databases, containers and network, record and secrets. Needs --yes. A generated
    Compose project's volumes go with it. An adopted project's named volumes (your data) are kept unless
    --delete-volumes is given: `docker compose up` brings the project back on them."""
    from upgrade_infra.operations.release import destroy as destroy_env

    if not yes:
        raise BadInput(f"env destroy {name} deletes its databases, data, restore points and secrets",
                       fix=f"pass --yes to confirm (`upgrade-infra env down {name}` only stops it)")
    with progress(f"destroying {name}"):
        r = destroy_env(session(), name, delete_volumes=delete_volumes)
    emit(r, lambda x: console.print(x.verdict, markup=False))


@env_app.command("status")
def env_status(name: str = typer.Argument(..., callback=ENV_NAME)) -> None:
    """Versions, health, ports and database sizes of one environment. Exit 1 when unhealthy."""
    env = session().env(name)
    st = with_restore_points(env, env.status().to_dict())
    emit(st, lambda r: _status_table([r]))
    if not st["healthy"]:
        raise CheckFailed(f"environment {name!r} is not healthy")


@app.command("status")
def status_all(watch: bool = typer.Option(False, "--watch", help="health check loop: redraw until Ctrl-C"),
               interval: float = typer.Option(5.0, "--interval", help="seconds between rounds with --watch"),
               count: int = typer.Option(None, "--count", help="with --watch: stop after N rounds")) -> None:
    """Every environment (production and staging) at a glance; --watch keeps checking."""
    if watch:
        from upgrade_infra.cli.stage_cmds import watch_status

        return watch_status(interval, count)
    from upgrade_infra.restore import points as snapshots

    rows = []
    for e in session().environments():
        if e.state.load_record(e.name):
            st = with_restore_points(e, e.status().to_dict())
            st["restore_points"] = {**st.get("restore_points", {}), **snapshots.strategy_status(e)}
            rows.append(st)

    def human(r: dict) -> None:
        _status_table(r["environments"])
        for st in r["environments"]:
            rp = st["restore_points"]
            last = rp["last"]
            console.print(f"{st['name']}: restore points {rp['strategy'] or '?'} ({rp['why']})"
                          + (f"; last {last['id']} used {last['strategy']}" if last else ""), markup=False)
    emit({"environments": rows}, human)
