"""``quarantine show|export|merge ENV``: what a rollback set aside, and bringing it back."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from upgrade_infra.cli.app import console, emit, progress, session, state_of, sub
from upgrade_infra.core.errors import CheckFailed
from upgrade_infra.restore import quarantine

q_app = sub("quarantine", "Rows a rollback set aside: show them, export them, merge them back.")
OP = typer.Option(None, "--op", help="the rollback's operation id (default: the newest quarantine)")


@q_app.command("show")
def show(env: str, op: str = OP) -> None:
    """The quarantine's report: rows per table written after the upgrade, not in production."""
    res = quarantine.show(session().env(env), op)

    def human(r: dict) -> None:
        if not r.get("op"):
            console.print(f"no quarantine in {escape(env)}")
            return
        console.print(f"quarantine {r['op']} of {escape(env)} (restore point {r['restore_point']}): "
                      f"{r['rows_new_total'] or 0} row(s) written after the upgrade; databases {r['databases']}",
                      highlight=False, markup=False)
        t = Table(title="tables")
        for c in ("database", "table", "new rows", "gone", "by"):
            t.add_column(c)
        for x in r["tables"]:
            t.add_row(escape(x["database"]), escape(x["table"]), str(x["rows_new"]), str(x["rows_gone"]), escape(x["by"]))
        console.print(t)
        if r.get("merged"):
            console.print(f"merged back: {r['merged']}", markup=False)
    emit(res, human)


@q_app.command("export")
def export(env: str, directory: Path = typer.Argument(..., help="CSV files go to DIRECTORY/<op>/"), op: str = OP) -> None:
    """Write the quarantined rows production does not have, one CSV per table (0600)."""
    with progress(f"exporting the quarantine of {env}"):
        res = quarantine.export(session().env(env), op, directory)
    emit(res, lambda r: [console.print(f"{f['database']}.{f['table']}: {f['rows']} row(s) -> {f['path']}"
                                       + (f" ({f['note']})" if f["note"] else ""), markup=False, highlight=False)
                         for f in r["files"]] or console.print("nothing to export"))


@q_app.command("merge")
def merge(env: str, op: str = OP,
          dry_run: bool = typer.Option(False, "--dry-run", help="only say what would be merged")) -> None:
    """Insert the quarantined rows back into ENV where they do not conflict; report the rest (exit 1)."""
    with progress(f"merging the quarantine of {env}"):
        res = quarantine.merge(session().env(env), op, dry_run=dry_run)

    def human(r: dict) -> None:
        verb = "would merge" if r["dry_run"] else "merged"
        rows = r["would_merge"] if r["dry_run"] else r["merged"]
        console.print(f"{verb}: " + (", ".join(f"{m['database']}.{m['table']} {m['rows']}" for m in rows) or "nothing"),
                      markup=False, highlight=False)
        for c in r["not_merged"]:
            console.print(f"not merged: {c['database']}.{c['table']} {c['rows']} row(s) {c['keys'][:5]}: {c['reason']}",
                          markup=False, highlight=False, soft_wrap=True)
    emit(res, human)
    if res["not_merged"]:
        err = CheckFailed(f"{res['not_merged_total']} quarantined row(s) were not merged",
                          fix=f"see the list; `upgrade-infra quarantine export {env} DIR` writes them as CSV")
        if state_of().json:
            raise typer.Exit(err.exit_code)
        raise err
