"""``migrate test|lint|cross-major``: database migration testing."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markdown import Markdown

from upgrade_infra.cli.app import console, emit, esc, progress, session, sub
from upgrade_infra.core.errors import CheckFailed

if TYPE_CHECKING:
    from upgrade_infra.migration.results import MigrationTestResult

mig_app = sub("migrate", "Rehearse migrations on staging, lint their SQL, check other PostgreSQL majors.")


@mig_app.command("test")
def test(on: str = typer.Option(..., "--on", help="the staging environment to rehearse on"),
         to: list[str] = typer.Option(..., "--to", help="SERVICE=VERSION, repeatable"),
         report_file: Path = typer.Option(None, "--report", help="write the JSON report here (and .md beside it)"),
         suite: list[str] = typer.Option([], "--suite", help="validation suites to run on the migrated staging"),
         mode: str = typer.Option(None, "--mode", help="start (new version migrates on start) or command"),
         interval_ms: int = typer.Option(50, "--interval-ms", help="lock sampling interval (<= 100)"),
         skip: list[str] = typer.Option([], "--skip", help="optional step to skip: lint, downgrade, validate, "
                                                            "compatibility (repeatable)"),
         no_canary: bool = typer.Option(False, "--no-canary", help="no canary reads during the migration"),
         expect: Path = typer.Option(None, "--expect", help="YAML file of more expected_changes (e.g. one "
                                                            "written by --accept)"),
         accept: Path = typer.Option(None, "--accept", help="when only undeclared changes fail, write their "
                                                            "declarations to this YAML file for review")) -> None:
    """Rehearse the migration to --to on a staging env: locks, integrity, reversibility, compatibility.

    Exit 0 when the rehearsal passes the manifest's migration thresholds, 1 when it fails.
    """
    from upgrade_infra.migration import rehearsal, report

    targets = rehearsal.parse_targets(to)
    with progress(f"rehearsing {', '.join(to)} on {on}"):
        rep = rehearsal.rehearse(session(), on, targets, suites=suite or None, interval_s=interval_ms / 1000,
                                 mode=mode, skip=tuple(skip), canary=not no_canary, report_path=report_file,
                                 expect=expect, accept=accept)

    def human(r: MigrationTestResult) -> None:
        console.print(Markdown(report.render(r)))
        console.print(f"report: {r.report_json} and {r.report_md}", soft_wrap=True, markup=False)
        acc = r.accept
        if acc and acc["written"]:
            console.print(f"accepted changes written to {acc['path']}: review it, then add it to "
                          "migration.expected_changes_files (or pass --expect) and rehearse again", soft_wrap=True, markup=False)
        elif acc:
            console.print(f"--accept: nothing written ({acc['reason']})", soft_wrap=True, markup=False)

    emit(rep, human)
    if not rep.passed:
        raise CheckFailed(f"migration rehearsal failed: {'; '.join(rep.failures[:3])}")


@mig_app.command("lint")
def lint_cmd(service: str = typer.Option(..., "--service"), from_: str = typer.Option(..., "--from"),
             to: str = typer.Option(..., "--to"),
             on: str = typer.Option("production", "--on", help="environment whose context renders the sql "
                                                               "command (offline: no database is touched)"),
             strict: bool = typer.Option(False, "--strict", help="exit 1 when lock hazards are found")) -> None:
    """Lint a service's migration SQL (its declared `sql` command) with squawk."""
    from upgrade_infra.migration import lint

    res = lint.lint(session().env(on), service, from_, to).to_dict()

    def human(r: dict) -> None:
        console.print(f"{service} {from_} -> {to}: {len(r['findings'])} finding(s), {r['lock_hazards']} lock hazard(s)",
                      markup=False)
        for f in r["findings"]:
            tag = "[red]lock hazard[/red]" if f["lock_hazard"] else "note"
            console.print(f"  line {f['line']} {tag} {esc(f['rule'])}: {esc(f['message'])}\n    {esc(f['statement'])}")

    emit(res, human)
    if strict and res["lock_hazards"]:
        raise CheckFailed(f"{res['lock_hazards']} lock hazard(s) in {service} {from_} -> {to}")


@mig_app.command("cross-major")
def cross_major_cmd(on: str = typer.Option("production", "--on"),
                    major: list[int] = typer.Option([], "--major", help="target major(s); default: every other "
                                                                         "available one")) -> None:
    """Dump ENV's databases, restore into a scratch cluster of another PostgreSQL major, compare and check."""
    from upgrade_infra.migration.crossmajor import cross_major

    with progress(f"restoring {on} into PostgreSQL {', '.join(map(str, major)) or 'other majors'}"):
        res = cross_major(session().env(on), major or None).to_dict()

    def human(r: dict) -> None:
        console.print(f"{r['environment']} (PostgreSQL {r['source_version']}):", markup=False)
        for t in r["targets"]:
            state = "[green]PASS[/green]" if t["passed"] else "[red]FAIL[/red]"
            console.print(f"  -> {t['major']} ({esc(t['version'])}, {esc(t['source'])}): {state} {t['tables']} tables, "
                          f"{t['rows']} rows, {t['seconds']}")
            for line in t["differences"] + t["constraints_failed"] + t["invariants_failed"] + [t["error"] or ""]:
                if line:
                    console.print(f"     {line}", markup=False)

    emit(res, human)
    if not res["passed"]:
        raise CheckFailed("cross-major check failed")
