"""The publication gate: execute every runbook → check results and the rollback budget → build the site.

``run_all`` executes runbooks in order into a fresh run directory, then makes it ``reports/latest``
(a failed run is kept too: its notebooks say where it failed). ``gate`` decides; only a passing
gate rebuilds the site, built aside and swapped in, so a failure leaves the previous site untouched.

``publish`` and ``run_all`` take a :class:`~upgrade_infra.operations.session.Session` first (the
stack, and the state dir the runbooks run in: a fresh one for ``publish``); ``publish`` returns a :class:`PublishResult` (``to_dict()`` is
``summary.json`` and ``site publish --json``).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upgrade_infra.core import runner
from upgrade_infra.core.errors import BadInput, CheckFailed
from upgrade_infra.core.redact import scrub
from upgrade_infra.core.results import Result, optional, secs
from upgrade_infra.core.state import atomic_write_json, read_json
from upgrade_infra.docsite import runbooks, siteassets, siteversions

if TYPE_CHECKING:
    from upgrade_infra.operations.session import Session

ROLLBACK_RUNBOOK = "rollback"
RUN_STATE_DIR = ".upgrade-infra-site"


@dataclass
class PublishResult(Result):
    """The gate's summary of a run of the runbooks (``site publish``, ``runbook run-all``)."""

    generated_at: str
    runbooks: list[dict[str, Any]]  # name, status, duration_s, papermill_overhead_s, error, output
    rollback: dict[str, Any]  # the rollback drill's figures: total_s, budget_s, verified, quarantined_rows, …
    gate: str  # pass | fail
    reasons: list[str] = field(default_factory=list)
    runbooks_s: float | None = optional()
    site_build_s: float | None = optional()
    site: str | None = optional()
    site_version: str | None = optional()
    site_versions: list[str] | None = optional()
    site_versions_removed: list[str] | None = optional()

    @property
    def ok(self) -> bool:
        return self.gate == "pass"

    @property
    def verdict(self) -> str:
        passed = sum(r["status"] == "passed" for r in self.runbooks)
        rb = self.rollback
        line = (f"gate {self.gate}: {passed} of {len(self.runbooks)} runbooks passed"
                + (f" in {secs(self.runbooks_s)}" if self.runbooks_s is not None else "")
                + f"; rollback {secs(rb.get('total_s'))} of {rb.get('budget_s'):g} s, "
                  f"{'verified' if rb.get('verified') else 'not verified'}")
        if self.site:
            line += f"; site built in {secs(self.site_build_s)}"
        return line + "".join(f"; {r}" for r in self.reasons[:2])


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


def run_all(s: Session, directory: Path, reports: Path, *, only: list[str] | None = None,
            params: dict[str, dict] | None = None) -> list[runbooks.RunResult]:
    """Execute the runbooks of ``directory`` in order against ``s`` (its stack and state dir)."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    run_dir = reports / "runs" / stamp
    env = {"UPGRADE_INFRA_STACK": str(s.stack.resolve()), "UPGRADE_INFRA_STATE_DIR": str(s.state.root.resolve())}
    results = []
    todo = [(n, p) for n, p in runbooks.list_runbooks(directory) if not only or n in only]
    with Progress([n for n, _ in todo]) as progress:
        for name, path in todo:
            progress.begin(name)
            r = runbooks.execute(path, run_dir, (params or {}).get(name), env=env,
                                 progress=lambda step, n=name: progress.step(n, step))
            progress.end(name, r)
            results.append(r)
    latest = reports / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink() if latest.is_symlink() else shutil.rmtree(latest)
    latest.symlink_to(Path("runs") / stamp)
    return results


class Progress:
    """One live line per runbook on stderr (name, current step, elapsed) while ``site publish`` runs;
    without a terminal (CI logs), one plain line per step instead."""

    def __init__(self, names: list[str]) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.rows = {n: {"state": "waiting", "step": "", "t0": None, "s": None} for n in names}
        self.live: Any = None

    def __enter__(self) -> Progress:
        if self.console.is_terminal:
            from rich.live import Live

            self.live = Live(self._render(), console=self.console, refresh_per_second=4,
                             get_renderable=self._render)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def _render(self) -> Any:
        from rich.table import Table

        t = Table.grid(padding=(0, 2))
        icons = {"waiting": "[dim]·[/]", "running": "[yellow]▶[/]", "passed": "[green]✔[/]", "failed": "[red]✘[/]"}
        for n, r in self.rows.items():
            secs = r["s"] if r["s"] is not None else (time.monotonic() - r["t0"] if r["t0"] else None)
            t.add_row(icons[r["state"]], n, f"{secs:6.1f} s" if secs is not None else "", r["step"])
        return t

    def _line(self, name: str, text: str) -> None:
        if self.live is None:
            r = self.rows[name]
            secs = time.monotonic() - r["t0"] if r["t0"] else 0.0
            self.console.print(f"[{name} {secs:5.1f} s] {text}", highlight=False, markup=False)

    def begin(self, name: str) -> None:
        self.rows[name].update(state="running", t0=time.monotonic(), step="starting")
        self._line(name, "started")

    def step(self, name: str, step: str) -> None:
        self.rows[name]["step"] = step
        self._line(name, step)

    def end(self, name: str, result: runbooks.RunResult) -> None:
        self.rows[name].update(state=result.status, s=result.duration_s,
                               step=result.error or f"{len(result.steps)} steps")
        self._line(name, f"{result.status}" + (f": {result.error}" if result.error else ""))


def summarize(results: list[runbooks.RunResult], rollback_budget_s: float, reports: Path) -> PublishResult:
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
    return PublishResult(
        generated_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        runbooks=[{"name": r.name, "status": r.status, "duration_s": r.duration_s,
                   "papermill_overhead_s": r.papermill_overhead_s, "error": r.error,
                   "output": os.path.relpath(r.notebook, reports)} for r in results],
        rollback=rollback, gate="fail" if reasons else "pass", reasons=reasons)


def record_history(paths: Paths, summary: PublishResult) -> list[dict[str, Any]]:
    entry = {"at": summary.generated_at, "gate": summary.gate, "rollback_s": summary.rollback.get("total_s")}
    with open(paths.history, "a") as f:
        f.write(json.dumps(entry) + "\n")
    lines = paths.history.read_text().splitlines()
    return [json.loads(line) for line in lines[-20:]]


NO_CLI_REFERENCE = "# CLI reference\n\nGenerated by `upgrade-infra site publish`.\n"


def build_site(paths: Paths, summary: PublishResult, history: list[dict], *, stack: Path | None = None,
               state_dir: Path | None = None, versions: dict[str, Any] | None = None,
               cli_reference: str = NO_CLI_REFERENCE, doc_check: dict[str, Any] | None = None) -> Path:
    """Link docs/ and mkdocs.yml into build/, add generated pages and executed runbooks, build strict.

    The docs are symlinked, not copied, so "last updated" comes from each page's git history.
    ``cli_reference`` (the CLI reference page) and ``doc_check`` (the documentation check's summary)
    come from the CLI that runs ``site publish``: docsite sits below the CLI and never imports it."""
    from upgrade_infra.docsite import cos

    build = paths.build
    shutil.rmtree(build, ignore_errors=True)
    link_tree(paths.repo / "docs", build / "docs")
    config = site_config((paths.repo / "mkdocs.yml").read_text(), repo_url(paths.repo), version_line(paths.repo),
                         edit_uri=os.environ.get("UPGRADE_INFRA_EDIT_URI"))
    if versions:  # the version selector's list, inlined (overrides/main.html)
        config = siteversions.set_extra(config, "docs_versions", versions)
    (build / "mkdocs.yml").write_text(config)
    if (paths.repo / "overrides").is_dir():
        link_tree(paths.repo / "overrides", build / "overrides")
    if (paths.repo / "CHANGELOG.md").exists():
        os.symlink(paths.repo / "CHANGELOG.md", build / "CHANGELOG.md")
    nb_dir = build / "docs" / "runbooks"
    nb_dir.mkdir(parents=True, exist_ok=True)
    latest = paths.latest.resolve()
    ran = {r["name"] for r in summary.runbooks}
    for name, _ in runbooks.list_runbooks(paths.repo / "runbooks"):
        if name not in ran:  # a partial run (--only): say so, never show a stale page as current
            _not_run_page(nb_dir / f"{name}.ipynb", name)
            continue
        link_docs(latest / f"{name}.ipynb", nb_dir / f"{name}.ipynb")
        spill = latest / f"{name}.outputs"
        if spill.exists():
            shutil.copytree(spill, nb_dir / spill.name)
    for section in SECTIONS:
        add_section(paths, nb_dir, section)
    _write(build / "docs" / "reference" / "cli.md", cli_reference)
    js_dir = build / "docs" / "javascripts"
    js_dir.mkdir(exist_ok=True)
    shutil.copy2(siteassets.mermaid_js(paths.repo / ".cache"), js_dir / "mermaid.min.js")
    shutil.copy2(siteassets.iframe_worker_js(paths.repo / ".cache"), js_dir / "iframe-worker-shim.js")
    cos.write_report(build / "docs" / "validation", summary.to_dict(), history, latest, doc_check=doc_check,
                     stack=stack,
                     state_dir=state_dir)
    out = build / "site"
    runner.run(mkdocs_argv(build / "mkdocs.yml", out), env=runner.base_env({"NO_MKDOCS_2_WARNING": "1"}),
               timeout=600, cwd=build)
    siteassets.copy_page_sources(build / "docs", out)
    return out


def link_tree(src: Path, dst: Path) -> None:
    """``dst`` mirrors ``src`` with a symlink per file (generated pages are written beside them)."""
    for f in sorted(src.rglob("*")):
        target = dst / f.relative_to(src)
        if f.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(f.resolve(), target)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        path.unlink()  # never write through a link into the repository
    path.write_text(text)


_DOC_LINK = re.compile(r"(\]\(|href=\")\.\./(?:docs/)?([\w/.-]+?)\.md(#[\w-]*)?(?=[)\"])")


def doc_links(text: str, up: str = "../") -> str:
    """Links in runbook markdown point at ``../docs/X.md`` (right in Jupyter and on a forge); on the
    site the runbook is ``runbooks/NAME.html`` and the page ``X.html`` (``up`` is the way from the
    runbook's folder to the site's root: ``../../`` for ``runbooks/compose/NAME.html``)."""
    return _DOC_LINK.sub(lambda m: f"{m.group(1)}{up}{m.group(2)}.html{m.group(3) or ''}", text)


def link_docs(src: Path, dst: Path, up: str = "../") -> None:
    import nbformat

    nb = nbformat.read(src, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = doc_links(cell.source, up)
    dst.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dst)


def repo_url(repo: Path) -> str | None:
    """Where "edit this page" points: ``$UPGRADE_INFRA_REPO_URL`` or the git remote ``origin``."""
    url = os.environ.get("UPGRADE_INFRA_REPO_URL")
    if not url:
        r = runner.run(["git", "-C", str(repo), "remote", "get-url", "origin"], check=False, timeout=10)
        url = r.stdout.strip() if r.returncode == 0 else None
    if url and url.startswith("git@"):
        url = "https://" + url[4:].replace(":", "/", 1)
    return url.removesuffix(".git") if url and url.startswith("http") else None


def git_describe(repo: Path) -> str | None:
    r = runner.run(["git", "-C", str(repo), "describe", "--always", "--dirty"], check=False, timeout=10)
    return r.stdout.strip() if r.returncode == 0 else None


def version_line(repo: Path) -> str:
    """Which version of the docs this is (shown in every page's footer): package version and commit."""
    from upgrade_infra import __version__

    commit = git_describe(repo) or "unknown commit"
    return f"upgrade-infra {__version__}, docs built from {commit} on {time.strftime('%Y-%m-%d', time.gmtime())}"


EDIT_URI = "edit/main/docs/"


def site_config(text: str, url: str | None, version: str | None = None, *, edit_uri: str | None = None) -> str:
    """mkdocs.yml for the build: edit links when the repository's URL is known (``edit_uri`` from
    ``$UPGRADE_INFRA_EDIT_URI``, default ``edit/main/docs/``), a "view source" link to the page's
    Markdown shipped in the site otherwise; the version line in the footer."""
    extra = f"repo_url: {url}\nedit_uri: {edit_uri or EDIT_URI}\n" if url else ""
    extra += f"copyright: {json.dumps(version)}\n" if version else ""
    text = text.replace("docs_dir: docs\n", "docs_dir: docs\n" + extra, 1) if extra else text
    return text if url else siteversions.set_extra(text, "view_source", True)


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


def run_state_dir(s: Session) -> Path:
    """Where the runbooks of a publication run: the session's state dir when it names one, else
    ``.upgrade-infra-site/`` beside the stack file (never the stack's own state dir)."""
    return s.state_dir or s.stack.resolve().parent / RUN_STATE_DIR


def publish(s: Session, paths: Paths, *, rollback_budget_s: float, only: list[str] | None = None,
            docs_version: str | None = None, keep_versions: int = siteversions.DEFAULT_KEEP,
            cli_reference: str = NO_CLI_REFERENCE, doc_check: dict[str, Any] | None = None) -> PublishResult:
    """Run every runbook against ``s.stack`` in a fresh state dir (:func:`run_state_dir`, wiped first:
    only one a previous publication made), gate, and build the site as version ``docs_version`` when
    the gate passes. ``cli_reference`` (the CLI reference page) and ``doc_check`` (the documentation
    check's summary) come from the CLI that runs ``site publish``: docsite never imports the CLI."""
    from upgrade_infra.operations.session import Session, stop_everything

    docs_version = siteversions.check_name(docs_version or siteversions.default_version())
    siteversions.plan(None, docs_version, keep_versions)  # bad input fails before the runbooks run
    stack, state_dir = s.stack, run_state_dir(s)
    _require_site_run_dir(state_dir)
    stop_everything(Session(stack, state_dir))
    shutil.rmtree(state_dir, ignore_errors=True)
    state_dir.mkdir(parents=True)
    (state_dir / SITE_RUN_MARKER).write_text("state of a `site publish` run: wiped and re-created by the next one\n")
    t0 = time.monotonic()
    try:
        results = run_all(Session(stack, state_dir), paths.repo / "runbooks", paths.reports, only=only)
    finally:
        stop_everything(Session(stack, state_dir))
    summary = summarize(results, rollback_budget_s, paths.reports)
    summary.runbooks_s = round(time.monotonic() - t0, 1)
    history = record_history(paths, summary)
    if summary.ok:
        t1 = time.monotonic()
        versions, removed = siteversions.plan(siteversions.read(paths.site), docs_version, keep_versions,
                                              commit=git_describe(paths.repo))
        built = build_site(paths, summary, history, stack=stack, state_dir=state_dir,
                           versions=siteversions.selector_data(versions, docs_version),
                           cli_reference=cli_reference, doc_check=doc_check)
        siteversions.install(built, paths.site, docs_version, versions, removed)
        summary.site_build_s = round(time.monotonic() - t1, 1)
        summary.site = str(paths.site)
        summary.site_version = docs_version
        summary.site_versions = [v["version"] for v in versions]
        summary.site_versions_removed = removed
    atomic_write_json(paths.latest.resolve() / "summary.json", json.loads(scrub(json.dumps(summary.to_dict()))),
                      mode=0o600)
    if not summary.ok:
        raise CheckFailed("gate failed, site not rebuilt: " + "; ".join(summary.reasons),
                          fix=f"see {paths.latest}/ for the executed runbooks", summary=summary.to_dict())
    return summary


def last_summary(reports: Path) -> dict[str, Any] | None:
    return read_json(reports / "latest" / "summary.json")


# -- sections: runbooks executed against another stack, shown on the site beside the local ones ----------
@dataclass(frozen=True)
class Section:
    """Runbooks executed against another stack (``site run-section NAME``): into ``reports/NAME/``, on the
    site as ``runbooks/NAME/RUNBOOK.html`` with an index page ``runbooks/NAME.md``."""

    name: str
    title: str
    runbooks: tuple[str, ...]
    stack: str  # relative to the repository
    produce: str  # how a build gets them (shown when they were not executed for this commit)


SECTIONS: dict[str, Section] = {
    "compose": Section("compose", "Docker Compose", ("staging", "validation", "migration", "upgrade", "rollback"),
                       "examples/pa-stack-compose/stack.yaml",
                       "`nox -s compose` (as root: it starts a private Docker engine, builds the images, runs the "
                       "Compose tests, then these runbooks), then `nox -s site`"),
}


@dataclass
class SectionRun(PublishResult):
    """A section's run (``site run-section``): the gate's summary plus what it ran against and from which commit."""

    section: str | None = optional()
    stack: str | None = optional()
    commit: str | None = optional()  # `git describe --always --dirty`: the site shows the run only for this commit


def section(name: str) -> Section:
    if name not in SECTIONS:
        raise BadInput(f"no runbook section {name!r}", fix=f"use one of: {', '.join(SECTIONS)}")
    return SECTIONS[name]


def remove_everything(s: Session) -> list[str]:
    """Remove every environment of the state dir (staging copies first): a section's run leaves nothing on
    the engine, no container, network or volume (``stop_everything`` only stops them)."""
    from upgrade_infra.staging import lifecycle

    removed = []
    names = sorted(s.state.env_names(), key=lambda n: getattr(s.state.load_record(n), "kind", "") != "staging")
    for name in names:
        try:
            lifecycle.remove_environment(s, name)
            removed.append(name)
        except Exception:  # noqa: BLE001 - keep removing the others
            continue
    return removed


def run_section(s: Session, paths: Paths, name: str, *, rollback_budget_s: float,
                only: list[str] | None = None) -> SectionRun:
    """Execute section ``name``'s runbooks against ``s.stack`` in a fresh state dir (:func:`run_state_dir`),
    into ``reports/NAME/runs/<time>/`` (``reports/NAME/latest`` points there), with ``summary.json``
    carrying the commit; every environment made is removed at the end. What the runbooks need from the
    stack's backend (for Compose: ``DOCKER_HOST`` and the images) is the caller's (``nox -s compose``)."""
    from upgrade_infra.operations.session import Session

    sec = section(name)
    todo = [n for n in sec.runbooks if not only or n in only]
    stack, state_dir = s.stack, run_state_dir(s)
    _require_site_run_dir(state_dir)
    if state_dir.exists():
        remove_everything(Session(stack, state_dir))
    shutil.rmtree(state_dir, ignore_errors=True)
    state_dir.mkdir(parents=True)
    (state_dir / SITE_RUN_MARKER).write_text("state of a `site run-section` run: wiped and re-created by the next one\n")
    reports = paths.reports / sec.name
    commit = git_describe(paths.repo)  # the code the runbooks run: taken before (a commit made meanwhile is not it)
    t0 = time.monotonic()
    try:
        results = run_all(Session(stack, state_dir), paths.repo / "runbooks", reports, only=todo)
    finally:
        remove_everything(Session(stack, state_dir))
    base = summarize(results, rollback_budget_s, reports)
    summary = SectionRun(**{f: getattr(base, f) for f in base.__dataclass_fields__}, section=sec.name,
                         stack=_rel(stack, paths.repo), commit=commit)
    summary.runbooks_s = round(time.monotonic() - t0, 1)
    atomic_write_json((reports / "latest").resolve() / "summary.json",
                      json.loads(scrub(json.dumps(summary.to_dict()))), mode=0o600)
    if not summary.ok:
        raise CheckFailed(f"section {sec.name}: " + "; ".join(summary.reasons),
                          fix=f"see {reports / 'latest'}/ for the executed runbooks", summary=summary.to_dict())
    return summary


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def section_run(paths: Paths, name: str) -> tuple[dict[str, Any] | None, str]:
    """The section's last run when the site may show it, and why not otherwise: ``(summary, "")`` for a
    run made from the commit the site is built from, ``(None, reason)`` else."""
    sec = section(name)
    latest = paths.reports / sec.name / "latest"
    summary = read_json(latest / "summary.json") if latest.exists() else None
    if summary is None:
        return None, f"no run in {_rel(latest, paths.repo)}/"
    commit = git_describe(paths.repo)
    if summary.get("commit") != commit:
        return None, (f"the last run ({summary.get('generated_at')}) was made from commit "
                      f"{summary.get('commit') or 'unknown'}, this site from {commit or 'an unknown commit'}")
    return summary, ""


def add_section(paths: Paths, nb_dir: Path, name: str) -> dict[str, Any] | None:
    """Put section ``name`` into the site being built: its executed runbooks (only when made from the same
    commit) or, for each, a page saying it was not executed in this build, and the index page
    ``runbooks/NAME.md``. Returns the run's summary when it is shown."""
    sec = section(name)
    summary, why = section_run(paths, name)
    latest = (paths.reports / sec.name / "latest").resolve()
    ran = {r["name"]: r for r in (summary or {}).get("runbooks", [])}
    out = nb_dir / sec.name
    for rb in sec.runbooks:
        dst = out / f"{rb}.ipynb"
        if rb in ran and (latest / f"{rb}.ipynb").exists():
            link_docs(latest / f"{rb}.ipynb", dst, up="../../")
            spill = latest / f"{rb}.outputs"
            if spill.exists():
                shutil.copytree(spill, out / spill.name)
        else:
            _section_not_run_page(dst, rb, sec, why or "this runbook was not part of the run (--only)")
    _write(nb_dir / f"{sec.name}.md", section_index(sec, summary, why))
    return summary


def section_index(sec: Section, summary: dict[str, Any] | None, why: str) -> str:
    """The section's index page: what ran, against what, from which commit; or plainly that it did not."""
    lines = [f"# Runbooks on {sec.title}", "",
             f"The staging, validation, migration, upgrade and rollback runbooks executed against "
             f"`{sec.stack}` (the reference stack as a {sec.title} project, from locally built images), "
             f"beside the [same runbooks on the local backend](index.md). How to do each step by hand: "
             f"[{sec.title}](../compose/index.md).", ""]
    if summary is None:
        lines += ['!!! warning "Not executed in this build"',
                  f"    These runbooks were not executed for this build of the site: {why}. No output is shown "
                  f"rather than an old or made-up one. To produce them: {sec.produce}.", ""]
    else:
        rb = summary.get("rollback") or {}
        lines += [f'!!! {"success" if summary.get("gate") == "pass" else "failure"} "Executed from commit '
                  f'{summary.get("commit")} at {summary.get("generated_at")}: {summary.get("gate")}"',
                  f"    Against `{summary.get('stack')}`; rollback drill {rb.get('total_s')} s of a "
                  f"{rb.get('budget_s')} s budget, verified: {'yes' if rb.get('verified') else 'no'}.", ""]
    lines += ["| runbook | executed output | status | seconds |", "| --- | --- | --- | --- |"]
    ran = {r["name"]: r for r in (summary or {}).get("runbooks", [])}
    for name in sec.runbooks:
        r = ran.get(name)
        lines.append(f"| {name} | [{sec.name}/{name}]({sec.name}/{name}.ipynb) | "
                     f"{r['status'] if r else 'not executed'} | {r['duration_s'] if r else '–'} |")
    return "\n".join(lines) + "\n"


def _section_not_run_page(path: Path, name: str, sec: Section, why: str) -> None:
    import nbformat

    produce = re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(sec.produce, quote=False))
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell(
        f"# {name} on {sec.title}\n\n<div class=\"admonition warning\"><p class=\"admonition-title\">Not executed "
        f"in this build</p><p>Runbook <code>{name}</code> was not executed against <code>{sec.stack}</code> for "
        f"this build of the site ({html.escape(why)}), so no output is shown. To produce it: {produce}.</p></div>"))
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
