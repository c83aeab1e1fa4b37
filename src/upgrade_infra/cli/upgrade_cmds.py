"""``upgrade``, ``rollback``, ``resume``, ``history`` and ``env restore``."""

from __future__ import annotations

import time

import typer
from rich.table import Table

from upgrade_infra.cli.app import ENV_NAME, RP_ID, app, console, emit, esc, progress, session, state_of
from upgrade_infra.cli.env_cmds import env_app
from upgrade_infra.cli.snapshot_cmds import command_line, steps_table
from upgrade_infra.core import journal
from upgrade_infra.core.errors import BadInput, BudgetExceeded, CheckFailed, UpgradeInfraError
from upgrade_infra.operations import dr
from upgrade_infra.operations import rollback as rb
from upgrade_infra.operations import upgrade as up
from upgrade_infra.operations.results import QuarantineSummary, RecoveryResult, RollbackResult, UpgradeResult
from upgrade_infra.stack import secrets as secretlib


def quarantine_table(q: QuarantineSummary) -> None:
    tables = [t for t in q.tables or [] if (t["rows_new"] or t["rows_gone"]) and not t.get("bookkeeping")]
    console.print(f"quarantine {q.op}: {q.rows_new_total or 0} rows written after the upgrade, "
                  f"kept in {q.where}", markup=False)
    if not tables:
        return
    t = Table(title="rows only in the quarantine (written after the upgrade)")
    for c in ("database", "table", "new rows", "gone", "by"):
        t.add_column(c)
    for r in tables:
        t.add_row(esc(r["database"]), esc(r["table"]), str(r["rows_new"]), str(r["rows_gone"]), esc(r["by"]))
    console.print(t)
    for r in tables:
        if r.get("export"):
            console.print(f"[bold]{esc(r['database'])}.{esc(r['table'])}[/bold] inspect: {esc(r['inspect'])}\n"
                          f"  export: {esc(r['export'])}",
                          soft_wrap=True, highlight=False)


def show_rollback(r: RollbackResult) -> None:
    steps_table(r.steps, f"rollback of {r.environment} to {r.restore_point} ({r.op})")
    colour = "red" if r.over_budget else "green"
    db = f"{r.database_step_s}s" if r.database_step_s is not None else "not run"
    via = f" via {r.staging_path}" if r.staging_path else ""
    resumed = r.resumed_steps
    note = f"; {resumed} of {len(r.steps)} steps done before the resume" if resumed else ""
    console.print(f"[{colour}]total {r.total_s:.2f}s of a {r.budget_s:.0f}s budget[/{colour}] "
                  f"(database step {db}{esc(via)}; wall {r.wall_s:.2f}s{note}); "
                  f"verified: {esc(r.verified)}; versions now {esc(_v(r.versions))}", soft_wrap=True)
    quarantine_table(r.quarantine)


def fail(err: Exception) -> None:
    """After the result was emitted: with --json, only the exit code (stdout stays one JSON document)."""
    if state_of().json:
        raise typer.Exit(getattr(err, "exit_code", 1))
    raise err


def _check_budget(r: RollbackResult) -> None:
    if r.over_budget:
        fail(BudgetExceeded(f"rollback took {r.total_s:.1f}s, over the {r.budget_s:.0f}s budget",
                             fix="see the step table; raise policies.rollback_budget_s only if that is acceptable"))


def do_rollback(env: str, to: str | None) -> None:
    e = session().env(env)
    with progress(f"rolling {env} back"):
        res = rb.rollback(e, to, command=command_line())
    if isinstance(res, RecoveryResult):
        emit(res, show_recovered)
        return
    emit(res, show_rollback)
    _check_budget(res)


def show_recovered(r: RecoveryResult) -> None:
    if not r.recovered:
        console.print(f"nothing to resume in {r.environment}", markup=False)
    for x in r.recovered:
        console.print(x.verdict, markup=False)
        if x.result is not None:
            show_rollback(x.result)
    console.print(f"versions now {r.versions}", markup=False)


@app.command("upgrade")
def upgrade(env: str = typer.Argument(..., callback=ENV_NAME), to: list[str] = typer.Option(None, "--to", help="SERVICE=VERSION (repeatable)"),
            postgres: str = typer.Option(None, "--postgres", metavar="MAJOR|IMAGE",
                                         help="PostgreSQL major upgrade instead, side by side into a new volume "
                                              "(compose backend): 16, or an image reference"),
            strategy: str = typer.Option(None, "--strategy", help="restore point strategy (default: policy)"),
            watch: float = typer.Option(None, "--watch", help="watch window in seconds (default: policy)"),
            allow_downgrade: bool = typer.Option(False, "--allow-downgrade",
                                                 help="let an older release start on the schema a newer one "
                                                      "migrated (without a declared downgrade command)")) -> None:
    """Guarded upgrade: restore point, switch, start, smoke checks, watch; rolls back on any failure.

    Going to a release older than the one that last migrated a database is refused (use `rollback`),
    unless the service declares a `downgrade` command or --allow-downgrade is given.

    With --postgres MAJOR (or an image): the PostgreSQL major upgrade. The target image must exist locally
    and have every extension the databases use; the data is copied into a new volume, the old volume and
    image are kept as the restore point `rollback` returns to.
    """
    e = session().env(env)
    if postgres is not None:
        if to or allow_downgrade or strategy:
            raise BadInput("--postgres upgrades PostgreSQL alone: --to, --strategy and --allow-downgrade do not "
                           "go with it", fix="upgrade the services and PostgreSQL in two commands")
        from upgrade_infra.operations import pgmajor

        with progress(f"upgrading PostgreSQL of {env}"):
            res = pgmajor.upgrade_postgres(e, postgres, command=command_line(), watch_s=watch)
    else:
        targets = up.parse_targets(e, to or [])
        with progress(f"upgrading {env}"):
            res = up.upgrade(e, targets, strategy=strategy, command=command_line(), watch_s=watch,
                             allow_downgrade=allow_downgrade)
    _show_upgrade(env, res)


def _show_upgrade(env: str, res: UpgradeResult) -> None:
    """The step table and outcome of an upgrade (services or PostgreSQL); exit 1 when rolled back."""

    def human(r: UpgradeResult) -> None:
        steps_table(r.steps, f"upgrade of {env}: {_v(r.from_versions)} -> {_v(r.to_versions)} ({r.op})")
        console.print(f"outcome: {r.outcome} in {r.total_s:.1f}s (downtime {r.downtime_s}s); "
                      f"restore point {r.restore_point}", markup=False)
        if r.rollback:
            console.print(f"[red]failed at {esc(r.failed_step)}:[/red] {esc(r.error)}", soft_wrap=True)
            show_rollback(r.rollback)
    emit(res, human)
    if not res.ok:
        fail(CheckFailed(f"upgrade of {env} failed at {res.failed_step} and was rolled back "
                         f"to {res.restore_point}: {res.error}"))


@app.command("rollback")
def rollback(env: str = typer.Argument(..., callback=ENV_NAME),
             to: str = typer.Option(None, "--to", callback=RP_ID, help="restore point id (default: before the "
                                                                       "last upgrade in effect)")) -> None:
    """Roll ENV back to a restore point (or finish an interrupted operation), verified."""
    do_rollback(env, to)


@app.command("resume")
def resume(env: str = typer.Argument(..., callback=ENV_NAME)) -> None:
    """Finish what a crashed upgrade-infra left half-done in ENV (from the journal)."""
    e = session().env(env)
    with progress(f"resuming {env}"):
        res = up.recover(e, command=command_line())
    emit(res, show_recovered)


@app.command("history")
def history(env: str = typer.Argument(None, callback=ENV_NAME), limit: int = typer.Option(20, "--limit")) -> None:
    """Operations (who, when, versions from -> to, outcome, durations) from the journal."""
    try:  # secrets given by environment variables are scrubbed too (generated ones always are)
        secretlib.known_values(session().manifest, session().state)
    except UpgradeInfraError:
        pass  # history reads the journal even when the manifest does not load
    ops = [o.to_dict() for o in journal.history(session().state, env, limit)]

    def human(rows: list[dict]) -> None:
        t = Table(title="history")
        for c in ("when", "env", "op", "kind", "who", "from", "to", "outcome", "seconds", "steps", "restore point"):
            t.add_column(c)
        for o in rows:
            bad = [s for s in o["steps"] if s["status"] not in ("ok", "undone")]
            steps = f"{len(o['steps'])}" + (f", {bad[0]['status']} at {bad[0]['name']}" if bad else "")
            t.add_row(time.strftime("%m-%d %H:%M:%S", time.localtime(o["started_at"])), esc(o["env"]), esc(o["op"]),
                      esc(o["kind"]), esc(o["user"]), esc(_v(o["from_versions"])), esc(_v(o["to_versions"])),
                      esc(o["outcome"]) if o["outcome"] else "[red]interrupted", str(o["duration_s"] or ""),
                      esc(steps), esc((o.get("data") or {}).get("strategy", "")) if o["kind"] in ("upgrade", "snapshot") else "")
        console.print(t)
        for o in rows:  # why each restore-point strategy was used (auto says what it detected)
            why = (o.get("data") or {}).get("strategy_why")
            if why and o["kind"] in ("upgrade", "snapshot"):
                console.print(f"{o['op']}: {o['data']['strategy']} ({why})")
    emit(ops, human)


def _v(d: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in d.items())


@env_app.command("restore")
def env_restore(name: str = typer.Argument(..., callback=ENV_NAME),
                from_: str = typer.Option(..., "--from", callback=RP_ID, help="restore point id (dump or fs; "
                                                                          "import an export first)"),
                port_base: int = typer.Option(None, "--port-base", help="default: the manifest's, else a "
                                                                          "free block of staging.port_range")) -> None:
    """Build a fresh environment NAME from a restore point (the machine-lost case) and verify it."""
    s = session()
    with progress(f"restoring {name} from {from_}"):
        res = dr.restore_env(s.manifest, s.state, name, from_, port_base=port_base, command=command_line())
    emit(res, lambda r: (steps_table(r["steps"],
                                     f"{name} restored from {from_} on port base {r['port_base']}"),
                         console.print(f"verified: {r['verified']} in {r['total_s']:.1f}s", markup=False)))
    if not res["verified"]:
        fail(CheckFailed(f"{name} was restored but its smoke checks fail: {res['smoke']['failed']}"))
