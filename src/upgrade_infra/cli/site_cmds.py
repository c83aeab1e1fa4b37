"""``runbook run-all`` and ``site publish``: the gate that blocks a stale or slow rollback from being published."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from upgrade_infra.cli import doccheck
from upgrade_infra.cli.app import app, console, emit, esc, progress, session, sub
from upgrade_infra.cli.reference import cli_reference
from upgrade_infra.cli.runbook_cmds import DIR, REPORTS, rb_app
from upgrade_infra.docsite import publish, siteversions
from upgrade_infra.operations.session import Session

site_app = sub("site", "Execute the runbooks, gate on their results, and build the docs site.")


def _summary_table(s: publish.PublishResult) -> None:
    t = Table(title=f"gate: {s.gate}")
    for c in ("runbook", "status", "seconds", "papermill overhead s"):
        t.add_column(c)
    for r in s.runbooks:
        t.add_row(esc(r["name"]), r["status"], f"{r['duration_s']:.1f}", f"{r.get('papermill_overhead_s') or 0:.2f}")
    console.print(t)
    rb = s.rollback
    console.print(f"rollback: {rb.get('total_s')} s of {rb['budget_s']} s budget, verified {rb.get('verified')}")
    for reason in s.reasons:
        console.print(f"[red]- {esc(reason)}")


@rb_app.command("run-all")
def run_all(directory: Path = DIR, reports: Path = REPORTS,
            only: list[str] = typer.Option([], "--only", help="run only these runbooks (in order)")) -> None:
    """Execute every runbook in order into reports/runs/<time>/ (reports/latest points there)."""
    s = session()
    with progress("running runbooks"):
        results = publish.run_all(s, directory, reports, only=only or None)
    summary = publish.summarize(results, s.manifest.policies.rollback_budget_s, reports)
    emit(summary, _summary_table)


@site_app.command("publish")
def site_publish(reports: Path = REPORTS, site: Path = typer.Option(Path("site"), "--site"),
                 rollback_budget: float = typer.Option(None, "--rollback-budget",
                                                       help="seconds; default policies.rollback_budget_s"),
                 state_dir: Path = typer.Option(None, "--run-state-dir",
                                                help="fresh state dir for the run (default .upgrade-infra-site/)"),
                 only: list[str] = typer.Option([], "--only", help="run only these runbooks"),
                 docs_version: str = typer.Option(None, "--docs-version", envvar="UPGRADE_INFRA_DOCS_VERSION",
                                                  help="publish as this version (site/VERSION/; default: the "
                                                       "package version); publishing it again replaces it"),
                 keep_versions: int = typer.Option(siteversions.DEFAULT_KEEP, "--keep-versions",
                                                   help="versions kept in the site (the oldest go first)")) -> None:
    """Run every runbook against the stack, gate (all passed, rollback within budget), build the site.

    The site keeps earlier versions: site/VERSION/ per version, site/latest/ and site/index.html lead to
    the newest, and every page has a version selector that works from files too."""
    s = session()
    budget = rollback_budget or s.manifest.policies.rollback_budget_s
    paths = publish.Paths(Path.cwd(), reports, site)
    with progress("executing runbooks, then building the site"):
        summary = publish.publish(Session(s.stack, state_dir), paths, rollback_budget_s=budget, only=only or None,
                                  docs_version=docs_version, keep_versions=keep_versions,
                                  cli_reference=cli_reference(app), doc_check=doccheck.summary(paths.repo))
    emit(summary, _summary_table)


@site_app.command("run-section")
def site_run_section(name: str = typer.Argument(..., help="the section: compose"), reports: Path = REPORTS,
                     rollback_budget: float = typer.Option(None, "--rollback-budget",
                                                           help="seconds; default policies.rollback_budget_s"),
                     state_dir: Path = typer.Option(None, "--run-state-dir",
                                                    help="fresh state dir for the run (default .upgrade-infra-site/ "
                                                         "beside the stack)"),
                     only: list[str] = typer.Option([], "--only", help="run only these runbooks of the section")) -> None:
    """Execute a section's runbooks against --stack into reports/NAME/ (compose: staging, validation, migration,
    upgrade, rollback on the Compose example); `site publish` from the same commit shows them on the site.

    Every environment the run made is removed at the end. The engine (DOCKER_HOST) and the images must be
    there: `nox -s compose` provides both."""
    s = session()
    budget = rollback_budget or s.manifest.policies.rollback_budget_s
    paths = publish.Paths(Path.cwd(), reports, Path("site"))
    with progress(f"executing the {name} runbooks"):
        summary = publish.run_section(Session(s.stack, state_dir), paths, name, rollback_budget_s=budget,
                                      only=only or None)
    emit(summary, _summary_table)
