"""``validate ENV`` (declared checks, JSON + JUnit results, baselines) and ``api-diff SERVICE``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from upgrade_infra.cli.app import app, console, console_err, emit, esc, session, state_of
from upgrade_infra.core.errors import CheckFailed
from upgrade_infra.core.redact import scrub

if TYPE_CHECKING:
    from upgrade_infra.validation.engine import ValidationReport

STATUS = {"passed": "[green]pass", "failed": "[red]FAIL", "error": "[red]ERROR"}


def _live(result) -> None:
    if not state_of().json:
        console_err.print(f"{STATUS[result.status]}[/] {esc(f'{result.suite:<12}')} {esc(result.name)} "
                          f"[dim]{result.duration_s:.2f}s[/]", highlight=False)


def _summary(r: ValidationReport) -> None:
    t = Table(title=esc(f"validate {r.env} ({', '.join(f'{k} {v}' for k, v in r.versions.items())})"))
    t.add_column("result", no_wrap=True)
    t.add_column("suite", no_wrap=True)
    t.add_column("check", overflow="fold", max_width=36)
    t.add_column("time", no_wrap=True, justify="right")
    t.add_column("detail", overflow="fold")
    for x in r.results:
        detail = x.message if x.passed else "see below"
        t.add_row(STATUS[x.status], esc(x.suite), esc(x.name), f"{x.duration_s:.2f}s", esc(detail[:200]))
    console.print(t)
    c = r.counts()
    verdict = "[green]all checks passed" if r.passed else f"[red]{c['failed']} failed, {c['error']} error(s)"
    console.print(f"{verdict}[/] ({c['passed']} passed) in {round(r.duration_s, 3):.1f}s; baseline: "
                  f"{esc(r.baseline or 'none')}; results: {esc(r.report_dir)}", highlight=False)
    for x in r.failures():
        console.print(f"[red]✗ {esc(x.name)}[/] ({esc(x.kind)}): {esc(x.message)}", highlight=False,
                      soft_wrap=True)
    if r.baseline_recorded:
        console.print(f"baseline recorded: {r.baseline_recorded}", markup=False)


@app.command("validate")
def validate(
    env: str = typer.Argument(..., help="environment to validate, e.g. production or a staging env"),
    suite: list[str] = typer.Option(None, "--suite", "-s", help="run only these suites (repeatable)"),
    smoke: bool = typer.Option(False, "--smoke", help="only smoke checks (smoke: true) and health probes"),
    baseline: str = typer.Option(None, "--baseline",
                                 help="compare with this environment's recorded baseline, or a baseline file "
                                      "(default: the environment's own, else its source's)"),
    record_baseline: bool = typer.Option(False, "--record-baseline",
                                         help="store this run's metrics as the environment's baseline"),
    baseline_out: Path = typer.Option(None, "--baseline-out", help="write the recorded baseline to this file"),
    junit: Path = typer.Option(None, "--junit", help="also write JUnit XML here"),
    report_dir: Path = typer.Option(None, "--report-dir",
                                    help="where results.json, junit.xml and screenshots go "
                                         "(default: <state>/reports/validation/<env>-<time>)"),
) -> None:
    """Run the manifest's checks against an environment. Exit 1 when a check fails."""
    from upgrade_infra.validation.engine import validate_env

    report = validate_env(session().env(env), suite or None, smoke_only=smoke, baseline=baseline,
                          report_dir=report_dir, junit=junit, record=record_baseline, baseline_out=baseline_out,
                          on_result=_live)
    emit(report, _summary)
    if not report.passed:
        names = ", ".join(r.name for r in report.failures()[:4])
        raise CheckFailed(scrub(f"{len(report.failures())} check(s) failed in {env}: {names}"),
                          fix=f"see {report.report_dir}/results.json and docs/testing/troubleshooting.md")


def _diff_human(d: dict) -> None:
    console.print(f"API of {d['service']}: {d['current']} -> {d['candidate']}", markup=False)
    for c in d["changes"]:
        tag = "[red]BREAKING[/]" if c["breaking"] else "[green]compatible[/]"
        console.print(f"  {tag} {esc(c['where'])}: {esc(c['what'])}", highlight=False)
    console.print("[green]no breaking change" if d["compatible"] else f"[red]{d['breaking']} breaking change(s)")


@app.command("api-diff")
def api_diff(
    service: str = typer.Argument(..., help="service whose OpenAPI document to compare"),
    env: str = typer.Option("production", "--env", help="environment running the current version"),
    candidate_env: str = typer.Option(None, "--candidate-env", help="staging environment running the candidate"),
    candidate_file: Path = typer.Option(None, "--candidate-file", help="saved OpenAPI document of the candidate"),
    current_file: Path = typer.Option(None, "--current-file", help="saved document instead of the running one"),
) -> None:
    """Breaking API changes between the current version and a candidate. Exit 1 when there are some."""
    from upgrade_infra.validation.openapi_diff import compare

    s = session()
    result = compare(s.env(env), service, candidate_env=s.env(candidate_env) if candidate_env else None,
                     candidate_file=candidate_file, current_file=current_file)
    emit(result.to_dict(), _diff_human)
    if not result.compatible:
        raise CheckFailed(f"{len(result.breaking)} breaking API change(s) in {service}: {result.breaking[0]}",
                          fix="keep the old fields/paths for a release, or coordinate the clients")
