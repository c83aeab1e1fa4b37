"""The publication gate: execute every runbook → check results and the rollback budget → build the site.

``run_all`` executes runbooks in order into a fresh run directory, then makes it ``reports/latest``
(a failed run is kept too: its notebooks say where it failed). ``gate`` decides; only a passing
gate rebuilds the site, built aside and swapped in, so a failure leaves the previous site untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import runbooks, runner, siteassets
from .errors import BadInput, CheckFailed
from .redact import scrub
from .state import atomic_write_json, read_json

ROLLBACK_RUNBOOK = "rollback"


@dataclass
class Paths:
    repo: Path
    reports: Path
    site: Path

    @property
    def latest(self) -> Path:
        return self.reports / "latest"

    @property
    def history(self) -> Path:
        return self.reports / "history.jsonl"

    @property
    def build(self) -> Path:
        return self.repo / "build"


def run_all(directory: Path, reports: Path, *, stack: Path, state_dir: Path,
            only: list[str] | None = None, params: dict[str, dict] | None = None) -> list[runbooks.RunResult]:
    stamp = time.strftime("%Y%m%dT%H%M%S")
    run_dir = reports / "runs" / stamp
    env = {"UPGRADE_INFRA_STACK": str(stack.resolve()), "UPGRADE_INFRA_STATE_DIR": str(state_dir.resolve())}
    results = []
    for name, path in runbooks.list_runbooks(directory):
        if only and name not in only:
            continue
        results.append(runbooks.execute(path, run_dir, (params or {}).get(name), env=env))
    latest = reports / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink() if latest.is_symlink() else shutil.rmtree(latest)
    latest.symlink_to(Path("runs") / stamp)
    return results


def summarize(results: list[runbooks.RunResult], rollback_budget_s: float, reports: Path) -> dict[str, Any]:
    rb = next((r for r in results if r.name == ROLLBACK_RUNBOOK), None)
    rollback = dict((rb.figures.get("rollback") or {}) if rb else {})
    rollback.setdefault("total_s", None)
    rollback["budget_s"] = rollback_budget_s
    rollback.setdefault("verified", False)
    rollback.setdefault("quarantined_rows", None)
    reasons = [f"runbook {r.name} {r.status}: {r.error}" for r in results if r.status != "passed"]
    if rb is None:
        reasons.append("the rollback drill did not run")
    elif rollback["total_s"] is None or not rollback["verified"]:
        reasons.append("the rollback drill reported no verified rollback time")
    elif rollback["total_s"] > rollback_budget_s:
        reasons.append(f"rollback took {rollback['total_s']:.1f}s, over the {rollback_budget_s:g}s budget")
    return {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "runbooks": [{"name": r.name, "status": r.status, "duration_s": r.duration_s,
                      "papermill_overhead_s": r.papermill_overhead_s, "error": r.error,
                      "output": os.path.relpath(r.notebook, reports)} for r in results],
        "rollback": rollback, "gate": "fail" if reasons else "pass", "reasons": reasons,
    }


def record_history(paths: Paths, summary: dict[str, Any]) -> list[dict[str, Any]]:
    entry = {"at": summary["generated_at"], "gate": summary["gate"],
             "rollback_s": summary["rollback"].get("total_s")}
    with open(paths.history, "a") as f:
        f.write(json.dumps(entry) + "\n")
    lines = paths.history.read_text().splitlines()
    return [json.loads(line) for line in lines[-20:]]


def build_site(paths: Paths, summary: dict[str, Any], history: list[dict]) -> Path:
    """Copy docs/ and mkdocs.yml into build/, add generated pages and executed runbooks, build strict."""
    from . import cos
    from .cli import app
    from .clidoc import cli_reference

    build = paths.build
    shutil.rmtree(build, ignore_errors=True)
    shutil.copytree(paths.repo / "docs", build / "docs")
    shutil.copy2(paths.repo / "mkdocs.yml", build / "mkdocs.yml")
    nb_dir = build / "docs" / "runbooks"
    nb_dir.mkdir(parents=True, exist_ok=True)
    latest = paths.latest.resolve()
    ran = {r["name"] for r in summary["runbooks"]}
    for name, _ in runbooks.list_runbooks(paths.repo / "runbooks"):
        if name not in ran:  # a partial run (--only): say so, never show a stale page as current
            _not_run_page(nb_dir / f"{name}.ipynb", name)
            continue
        shutil.copy2(latest / f"{name}.ipynb", nb_dir / f"{name}.ipynb")
        spill = latest / f"{name}.outputs"
        if spill.exists():
            shutil.copytree(spill, nb_dir / spill.name)
    (build / "docs" / "reference" / "cli.md").write_text(cli_reference(app))
    js_dir = build / "docs" / "javascripts"
    js_dir.mkdir(exist_ok=True)
    shutil.copy2(siteassets.mermaid_js(paths.repo / ".cache"), js_dir / "mermaid.min.js")
    cos.write_report(build / "docs" / "validation", summary, history, latest)
    out = build / "site"
    runner.run(mkdocs_argv(build / "mkdocs.yml", out), env=runner.base_env({"NO_MKDOCS_2_WARNING": "1"}),
               timeout=600)
    return out


def mkdocs_argv(config: Path, out: Path) -> list[str]:
    """Strict build. No -q: quiet mode hides the warnings that --strict turns into failures."""
    return [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(out)]


def _not_run_page(path: Path, name: str) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell(
        f"# {name}\n\n<div class=\"admonition warning\"><p class=\"admonition-title\">Not run in this "
        f"publication</p><p>This site was built from a partial run (<code>--only</code>); runbook "
        f"<code>{name}</code> was not executed, so no output is shown.</p></div>"))
    nbformat.write(nb, path)


def swap_in(new: Path, site: Path) -> None:
    old = site.with_name(site.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if site.exists():
        site.rename(old)
    shutil.move(str(new), str(site))
    shutil.rmtree(old, ignore_errors=True)


SITE_RUN_MARKER = ".site-run"


def _require_site_run_dir(state_dir: Path) -> None:
    """The run starts from a fresh state dir: never wipe one a user keeps real environments in."""
    if state_dir.exists() and any(state_dir.iterdir()) and not (state_dir / SITE_RUN_MARKER).exists():
        raise BadInput(f"refusing to wipe {state_dir}: it is not a state dir made by `site publish`",
                       fix="pass --run-state-dir to an empty or new directory")


def publish(paths: Paths, *, stack: Path, state_dir: Path, rollback_budget_s: float,
            only: list[str] | None = None) -> dict[str, Any]:
    from .session import Session, stop_everything

    _require_site_run_dir(state_dir)
    stop_everything(Session(stack, state_dir))
    shutil.rmtree(state_dir, ignore_errors=True)
    state_dir.mkdir(parents=True)
    (state_dir / SITE_RUN_MARKER).write_text("state of a `site publish` run: wiped and re-created by the next one\n")
    t0 = time.monotonic()
    try:
        results = run_all(paths.repo / "runbooks", paths.reports, stack=stack, state_dir=state_dir, only=only)
    finally:
        stop_everything(Session(stack, state_dir))
    summary = summarize(results, rollback_budget_s, paths.reports)
    summary["runbooks_s"] = round(time.monotonic() - t0, 1)
    history = record_history(paths, summary)
    if summary["gate"] == "pass":
        t1 = time.monotonic()
        swap_in(build_site(paths, summary, history), paths.site)
        summary["site_build_s"] = round(time.monotonic() - t1, 1)
        summary["site"] = str(paths.site)
    atomic_write_json(paths.latest.resolve() / "summary.json", json.loads(scrub(json.dumps(summary))), mode=0o600)
    if summary["gate"] != "pass":
        raise CheckFailed("gate failed, site not rebuilt: " + "; ".join(summary["reasons"]),
                          fix=f"see {paths.latest}/ for the executed runbooks", summary=summary)
    return summary


def last_summary(reports: Path) -> dict[str, Any] | None:
    return read_json(reports / "latest" / "summary.json")
