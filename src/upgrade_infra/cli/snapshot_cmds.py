"""``snapshot create|list|show|restore|prune|export|import``: restore points."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer
from rich.table import Table

from upgrade_infra.cli.app import ENV_NAME, RP_ID, console, emit, esc, progress, session, sub
from upgrade_infra.core.redact import scrub
from upgrade_infra.operations import dr
from upgrade_infra.restore import points as snapshots
from upgrade_infra.restore.results import RestorePointCreated

snap_app = sub("snapshot", "Restore points: create, list, show, restore, prune, export, import.")


def command_line() -> str:
    return scrub("upgrade-infra " + shlex.join(sys.argv[1:]))


def steps_table(steps: list[dict], title: str, budget: float | None = None) -> None:
    t = Table(title=esc(title))
    for c in ("step", "start s", "seconds", "status"):
        t.add_column(c, justify="right" if c != "step" and c != "status" else "left")
    for s in steps:
        t.add_row(esc(s["step"]), f"{s['start_s']:.2f}", f"{s['duration_s']:.3f}",
                  esc(s["status"]) + ("" if s.get("budgeted", True) else " (outside budget)"))
    console.print(t)


@snap_app.command("create")
def create(env: str = typer.Argument(..., callback=ENV_NAME), strategy: str = typer.Option(None, "--strategy", help="auto | clone | dump | fs | cow "
                                                     "(default: policies.snapshot_strategy)"),
           label: str = typer.Option(None, "--label", help="a note shown in `snapshot list`")) -> None:
    """Capture a restore point of ENV: databases, data dirs, versions, manifest hash."""
    e = session().env(env)
    with progress(f"creating a restore point of {env}"):
        res = snapshots.create(e, strategy, label=label, command=command_line())

    def human(r: RestorePointCreated) -> None:
        rp = r.restore_point
        steps_table(r.timeline, f"restore point {rp.id} ({rp.strategy}, {round(rp.bytes / 1e6, 1)} MB)")
        if r.downtime_s is not None:
            console.print(f"service downtime {r.downtime_s:.2f}s, capture {r.capture_s:.2f}s")
    emit(res, human)


@snap_app.command("list")
def list_(env: str = typer.Argument(None, help="only this environment")) -> None:
    """Restore points, oldest first."""
    rows = [rp.summary() for rp in snapshots.list_points(session().state, env)]

    def human(rs: list[dict]) -> None:
        t = Table(title="restore points")
        for c in ("id", "env", "strategy", "created", "versions", "MB", "label"):
            t.add_column(c)
        for r in rs:
            t.add_row(esc(r["id"]), esc(r["env"]), r["strategy"], r["created"],
                      esc(", ".join(f"{k}={v}" for k, v in r["versions"].items())), str(r["mb"]), esc(r["label"] or ""))
        console.print(t)
    emit(rows, human)


@snap_app.command("show")
def show(rp_id: str = typer.Argument(..., callback=RP_ID)) -> None:
    """Metadata of one restore point and whether it is intact (checksums, databases)."""
    s = session()
    rp = snapshots.get(s.state, rp_id)
    data = rp.model_dump()
    data["files"] = len(rp.files)
    data["problems"] = snapshots.verify(s.env(rp.env), rp) if rp.env in s.state.env_names() else ["env gone"]
    data["spare"] = snapshots.has_spare(s.env(rp.env), rp) if not data["problems"] else False
    emit(data, lambda d: [console.print(f"{k:>16}: {v}", markup=False) for k, v in d.items()])


@snap_app.command("restore")
def restore(env: str = typer.Argument(..., callback=ENV_NAME), rp_id: str = typer.Argument(..., callback=RP_ID)) -> None:
    """Put ENV back to restore point RP_ID (same as `rollback ENV --to RP_ID`)."""
    from upgrade_infra.cli.upgrade_cmds import do_rollback

    do_rollback(env, rp_id)


@snap_app.command("prune")
def prune(env: str, keep_last: int = typer.Option(None, "--keep-last"),
          max_age_days: float = typer.Option(None, "--max-age-days"),
          quarantine_days: float = typer.Option(None, "--quarantine-days"),
          dry_run: bool = typer.Option(False, "--dry-run", help="show what would be deleted")) -> None:
    """Delete restore points and quarantines beyond retention (policies.retention)."""
    res = snapshots.prune(session().env(env), keep_last=keep_last, max_age_days=max_age_days,
                          quarantine_days=quarantine_days, dry_run=dry_run, command=command_line())
    emit(res, lambda r: console.print(
        f"{'would delete' if r['dry_run'] else 'deleted'}: {[d['id'] for d in r['deleted']] or 'none'}; "
        f"incomplete: {r['incomplete_deleted'] or 'none'}; quarantines: {r['quarantines_deleted'] or 'none'}",
        markup=False))


@snap_app.command("export")
def export(rp_id: str = typer.Argument(..., callback=RP_ID), directory: Path = typer.Argument(...)) -> None:
    """Copy restore point RP_ID to DIRECTORY/<id>/ (a clone is converted to dumps), verified."""
    s = session()
    rp = snapshots.get(s.state, rp_id)
    with progress(f"exporting {rp_id}"):
        res = dr.export(s.env(rp.env), rp_id, directory)
    emit(res, lambda r: console.print(f"exported {r['restore_point']} to {r['path']} ({r['mb']} MB, "
                                      f"{r['files']} files, {r['seconds']:.1f}s); verify: sha256sum -c SHA256SUMS", markup=False))


@snap_app.command("import")
def import_(directory: Path) -> None:
    """Bring an exported restore point (DIRECTORY/<id>) into the state dir, verified by checksum."""
    with progress(f"importing {directory}"):
        res = dr.import_(session().state.ensure(), directory)
    emit(res, lambda r: console.print(f"imported {r['restore_point']} into {r['path']}", markup=False))
