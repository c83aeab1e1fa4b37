"""``runbook list|run``: execute the runbooks in runbooks/ with Papermill into reports/."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from upgrade_infra.cli.app import console, emit, esc, progress, session, sub
from upgrade_infra.core.errors import CheckFailed
from upgrade_infra.docsite import runbooks

rb_app = sub("runbook", "List and execute runbooks (notebooks) into reports/.")
DIR = typer.Option(None, "--dir", help="runbook directory (default: ./runbooks if it holds runbooks, "
                                      "else the runbooks shipped with upgrade-infra)")
REPORTS = typer.Option(Path("reports"), "--reports", help="where executed notebooks and results go")


def session_env() -> dict[str, str]:
    """The CLI's --stack/--state-dir reach the notebook kernel as UPGRADE_INFRA_STACK/STATE_DIR."""
    s, env = session(), {}
    if s.stack.exists():
        env["UPGRADE_INFRA_STACK"] = str(s.stack.resolve())
    if s.state_dir:
        env["UPGRADE_INFRA_STATE_DIR"] = str(s.state_dir.resolve())
    return env


@rb_app.command("list")
def list_(directory: Path = DIR) -> None:
    directory = directory or runbooks.default_dir()
    rows = [{"name": n, "path": str(p)} for n, p in runbooks.list_runbooks(directory)]
    emit(rows, lambda r: [console.print(f"{x['name']:<20} {x['path']}", markup=False) for x in r])


def _show(res: runbooks.RunResult) -> None:
    t = Table(title=f"runbook {esc(res.name)}: {res.status} in {res.duration_s:.1f}s")
    for c in ("step", "seconds", "budget", "status"):
        t.add_column(c)
    for s in res.steps:
        t.add_row(esc(s.name), f"{s.duration_s:.2f}", str(s.budget_s or ""), s.status)
    console.print(t)
    console.print(f"notebook: {res.notebook}\nresult:   {res.result_json}", markup=False)
    if res.error:
        console.print(f"[red]failed:[/red] {esc(res.error)}")


@rb_app.command("run")
def run(name: str, param: list[str] = typer.Option([], "-p", "--param", help="key=value (JSON values ok)"),
        directory: Path = DIR, reports: Path = REPORTS) -> None:
    """Execute one runbook; exit 1 when it fails (its executed notebook is still written)."""
    path = runbooks.find_runbook(directory or runbooks.default_dir(), name)
    params = runbooks.check_params(path, param)  # unknown names and wrong types: exit 2, nothing run
    runbooks.require_stack(path, session().stack, params)
    with progress(f"running {name}"):
        res = runbooks.execute(path, reports, params, env=session_env())
    emit(res.to_dict(), lambda _: _show(res))
    if res.status != "passed":  # the result (with its error) is already printed: just the exit code
        raise typer.Exit(CheckFailed.exit_code)
