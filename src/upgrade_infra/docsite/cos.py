"""The acceptance (conditions of satisfaction) report page, generated from the last run's results."""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

E2E = "e2e-cos"


@dataclass
class Criterion:
    title: str
    runbooks: list[str]
    figure: Callable[[dict], str]
    passed: Callable[[dict], bool]


def _g(d: dict, *keys: str, default: Any = None) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def _fmt_s(v: Any) -> str:
    return f"{v:.1f} s" if isinstance(v, int | float) else "n/a"


CRITERIA = [
    Criterion("Staging environments: isolated copy of production, synced and masked", [E2E, "staging"],
              lambda f: f"ready in {_fmt_s(_g(f, 'staging', 'ready_s'))}, "
                        f"{_g(f, 'staging', 'masking_leaks', default='?')} masked values leaked, "
                        f"row parity {_g(f, 'staging', 'parity', default='?')}",
              lambda f: _g(f, "staging", "masking_leaks") == 0 and bool(_g(f, "staging", "parity"))),
    Criterion("Automated validation: health, API, workflows, integration, performance, browser",
              [E2E, "validation"],
              lambda f: f"{_g(f, 'validation', 'passed', default='?')}/{_g(f, 'validation', 'total', default='?')} "
                        f"checks passed in {_fmt_s(_g(f, 'validation', 'duration_s'))}; the broken release "
                        f"failed {_g(f, 'validation', 'broken_release_failures', default='?')} checks",
              lambda f: bool(_g(f, "validation", "total")) and _g(f, "validation", "passed") == _g(
                  f, "validation", "total") and (_g(f, "validation", "broken_release_failures") or 0) > 0),
    Criterion("Database migration testing: rehearsed on production data, integrity and locks checked",
              [E2E, "migration"],
              lambda f: f"1.0.0→1.1.0 {_g(f, 'migration', 'verdict', default='?')} in "
                        f"{_fmt_s(_g(f, 'migration', 'duration_s'))}; data-losing release caught: "
                        f"{_g(f, 'migration', 'lossy_caught', default='?')}; lock-heavy release caught: "
                        f"{_g(f, 'migration', 'locking_caught', default='?')}",
              lambda f: _g(f, "migration", "verdict") == "pass" and bool(_g(f, "migration", "lossy_caught"))
              and bool(_g(f, "migration", "locking_caught"))),
    Criterion("Rapid rollback: back to the restore point within 5 minutes, verified, nothing lost",
              ["rollback", E2E],
              lambda f: f"{_fmt_s(_g(f, 'rollback', 'total_s'))} of a {_fmt_s(_g(f, 'rollback', 'budget_s'))} budget, "
                        f"verified {_g(f, 'rollback', 'verified', default='?')}, "
                        f"{_g(f, 'rollback', 'quarantined_rows', default='?')} rows kept in quarantine",
              lambda f: bool(_g(f, "rollback", "verified")) and isinstance(_g(f, "rollback", "total_s"), int | float)
              and _g(f, "rollback", "total_s") <= (_g(f, "rollback", "budget_s") or 300)),
    Criterion("Disaster recovery: a restore point exported, imported (checksums verified), rebuilt elsewhere, "
              "verified", ["disaster-recovery"],
              lambda f: f"export {_fmt_s(_g(f, 'dr', 'export_s'))}, import {_fmt_s(_g(f, 'dr', 'import_s'))}, "
                        f"restore {_fmt_s(_g(f, 'dr', 'restore_s'))} ({_g(f, 'dr', 'mb', default='?')} MB); "
                        f"healthy with the same data: {_g(f, 'dr', 'verified', default='?')}",
              lambda f: bool(_g(f, "dr", "verified"))),
]


def _figures(latest: Path, name: str) -> dict:
    p = latest / f"{name}.json"
    return json.loads(p.read_text()).get("figures", {}) if p.exists() else {}


def _merged(latest: Path, names: list[str]) -> dict:
    out: dict = {}
    for n in reversed(names):  # the first runbook named wins
        out.update(_figures(latest, n))
    return out


def _history_chart(out_dir: Path, history: list[dict], budget_s: float | None = None) -> str | None:
    points = [(h["at"], h["rollback_s"]) for h in history if isinstance(h.get("rollback_s"), int | float)]
    if not points:
        return None
    from upgrade_infra.core.extras import pyplot

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(7, 2.8))
    ax.plot(range(len(points)), [p[1] for p in points], marker="o")
    ax.set_xticks(range(len(points)), [p[0][5:16].replace("T", " ") for p in points], rotation=30, fontsize=7)
    ax.set_ylabel("rollback total (s)")
    ax.set_ylim(bottom=0)
    budget = f"budget {budget_s:g} s, policies.rollback_budget_s" if budget_s else "no budget recorded"
    ax.set_title(f"rollback drill: total time of the last runs ({budget})")
    fig.tight_layout()
    fig.savefig(out_dir / "rollback-history.png", dpi=110)
    plt.close(fig)
    return "rollback-history.png"


# -- rows computed from the run's files (reporting, security, documentation) ----------------------
_LEAK_PATTERNS = [re.compile(r"password=(?!«redacted»)[^\s&'\"<]{3,}"),
                  re.compile(r"postgres(?:ql)?://[^:/@\s]+:(?!«redacted»)[^@\s/]{3,}@")]
_SCANNED = {".ipynb", ".json", ".md", ".txt", ".html", ".yml", ".yaml", ".xml", ".jsonl", ".js", ".csv"}


def secret_scan(tops: list[Path], known: set[str]) -> dict[str, Any]:
    """Every text file under ``tops`` searched for the stack's secret values and credential patterns."""
    files, hits = 0, []
    for top in tops:
        for f in sorted(top.rglob("*")) if top.exists() else []:
            if not f.is_file() or f.suffix not in _SCANNED:
                continue
            files += 1
            text = f.read_text(errors="replace")
            if any(v in text for v in known) or any(p.search(text) for p in _LEAK_PATTERNS):
                hits.append(f.name)
    return {"files": files, "hits": hits}


def secret_modes(state_dir: Path | None) -> dict[str, Any]:
    """Generated secrets must be 0600 in 0700 directories."""
    root = state_dir / "secrets" if state_dir else None
    files, bad = 0, []
    for f in sorted(root.rglob("*")) if root and root.exists() else []:
        mode = stat.S_IMODE(f.stat().st_mode)
        if (f.is_file() and mode & 0o077) or (f.is_dir() and mode & 0o077):
            bad.append(f"{f.name} {mode:o}")
        files += f.is_file()
    return {"files": files, "bad": bad}


def isolation_guards(state_dir: Path | None) -> dict[str, int]:
    """Staging creations of the run: each passed the isolation guard (nothing of production reachable)
    before anything was created; a refusal would have ended the operation failed."""
    from upgrade_infra.core.journal import fold

    created = refused = 0
    jdir = state_dir / "journal" if state_dir else None
    for f in sorted(jdir.glob("*.jsonl")) if jdir and jdir.exists() else []:
        recs = [json.loads(line) for line in f.read_text().splitlines() if line.strip().startswith("{")]
        for op in fold(recs):
            if op.kind == "stage-create":
                created += op.outcome == "succeeded"
                refused += bool(op.error and "production" in (op.error or ""))
    return {"created": created, "refused": refused}


def masking_leaks(latest: Path) -> int | None:
    st, e2e = _figures(latest, "staging"), _figures(latest, E2E)
    values = []
    if "leak_check_ok" in st:
        values.append(0 if st["leak_check_ok"] else 1)
    if isinstance(_g(e2e, "staging", "masking_leaks"), int):
        values.append(_g(e2e, "staging", "masking_leaks"))
    return sum(values) if values else None


def reporting(summary: dict, latest: Path, history: list[dict]) -> dict[str, Any]:
    """Every runbook left its executed notebook and result JSON, their statuses agree with the summary,
    the history holds this run, and the maintenance runbook printed the Prometheus metrics."""
    missing, disagree = [], []
    for r in summary["runbooks"]:
        nb, js = latest / f"{r['name']}.ipynb", latest / f"{r['name']}.json"
        if not (nb.exists() and js.exists()):
            missing.append(r["name"])
        elif json.loads(js.read_text()).get("status") != r["status"]:
            disagree.append(r["name"])
    families = 0
    maint = latest / "maintenance.ipynb"
    if maint.exists():
        families = len(set(re.findall(r"# TYPE (upgrade_infra_\w+)", maint.read_text())))
    return {"runbooks": len(summary["runbooks"]), "missing": missing, "disagree": disagree,
            "history_runs": len(history), "metric_families": families}


def _known_secrets(stack: Path | None, state_dir: Path | None) -> set[str]:
    from upgrade_infra.core.redact import known

    values = set(known())
    if stack and state_dir:
        try:
            from upgrade_infra.operations.session import session
            from upgrade_infra.stack.secrets import known_values

            s = session(str(stack), str(state_dir))
            values |= set(known_values(s.manifest, s.state))
        except Exception:  # noqa: BLE001 - the scan still runs on the patterns
            pass
    return {v for v in values if v and len(v) >= 6}


def extra_rows(summary: dict, history: list[dict], latest: Path, *, doc_check: dict[str, Any] | None,
               site_sources: Path, stack: Path | None, state_dir: Path | None) -> list[tuple[str, str, str, bool]]:
    """(criterion, evidence, measured, passed) for reporting, security and documentation accuracy.

    ``doc_check``: the summary of the documentation check (``upgrade_infra.cli.doccheck.summary``),
    computed by the CLI that calls ``site publish`` (docsite never imports the CLI)."""
    rows = []
    rep = reporting(summary, latest, history)
    ok = not rep["missing"] and not rep["disagree"] and rep["history_runs"] > 0 and rep["metric_families"] > 0
    rows.append(("Reporting: history, metrics and reports present and consistent",
                 "[maintenance](../runbooks/maintenance.ipynb), `reports/latest/`, `reports/history.jsonl`",
                 f"{rep['runbooks']} executed notebooks and result files, {len(rep['missing'])} missing, "
                 f"{len(rep['disagree'])} disagreeing with the summary; {rep['history_runs']} runs in the history; "
                 f"{rep['metric_families']} metric families exposed", ok))
    scan = secret_scan([latest, site_sources], _known_secrets(stack, state_dir))
    modes = secret_modes(state_dir)
    iso = isolation_guards(state_dir)
    leaks = masking_leaks(latest)
    ok = (not scan["hits"] and not modes["bad"] and modes["files"] > 0 and iso["created"] > 0 and iso["refused"] == 0
          and leaks == 0)
    rows.append(("Security review: no secret in reports or site, secrets 0600, staging cannot reach "
                 "production, masking leaks nothing",
                 "[staging](../runbooks/staging.ipynb), [masking](../staging/masking.md), "
                 "[staging troubleshooting](../staging/troubleshooting.md)",
                 f"{scan['files']} report files and site sources scanned, {len(scan['hits'])} with a secret"
                 f"{' (' + ', '.join(scan['hits'][:3]) + ')' if scan['hits'] else ''}; "
                 f"{modes['files']} secret files, {len(modes['bad'])} readable by others; isolation guard passed "
                 f"on {iso['created']} staging creations; {leaks if leaks is not None else '?'} masked values leaked",
                 ok))
    if doc_check is not None:
        d = doc_check
        rows.append(("Documentation accurate: every command quoted in the docs, README and runbooks accepted "
                     "by the CLI; manifest fields and paths exist",
                     "`tests/test_docs_commands.py`",
                     f"{d['commands']} commands in {d['files']} files checked, {d['mismatches']} mismatches"
                     + (f" (first: {d['findings'][0]['file']}:{d['findings'][0]['line']})" if d["findings"] else ""),
                     d["mismatches"] == 0))
    return rows


def write_report(out_dir: Path, summary: dict, history: list[dict], latest: Path, *,
                 doc_check: dict[str, Any] | None = None, stack: Path | None = None,
                 state_dir: Path | None = None) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, all_ok = [], True
    for c in CRITERIA:
        f = _merged(latest, c.runbooks)
        if c.title.startswith("Rapid rollback"):
            f = {**f, "rollback": {**_g(f, "rollback", default={}), **summary.get("rollback", {})}}
        ok = c.passed(f)
        all_ok &= ok
        links = ", ".join(f"[{n}](../runbooks/{n}.ipynb)" for n in c.runbooks if (latest / f"{n}.ipynb").exists())
        rows.append(f"| {c.title} | {links or 'not run'} | {c.figure(f)} | {'**PASS**' if ok else '**FAIL**'} |")
    docs_ok = all(r["status"] == "passed" for r in summary["runbooks"])
    all_ok &= docs_ok
    for title, evidence, measured, ok in extra_rows(summary, history, latest, doc_check=doc_check,
                                                    site_sources=out_dir.parent, stack=stack, state_dir=state_dir):
        all_ok &= ok
        rows.append(f"| {title} | {evidence} | {measured} | {'**PASS**' if ok else '**FAIL**'} |")
    rows.append(f"| Documentation: every runbook executed on the reference stack, site built with `--strict` | "
                f"[runbook index](../runbooks/index.md) | {len(summary['runbooks'])} runbooks, "
                f"{sum(r['status'] == 'passed' for r in summary['runbooks'])} passed, gate {summary['gate']} | "
                f"{'**PASS**' if docs_ok else '**FAIL**'} |")
    runs = "\n".join(f"| [{r['name']}](../runbooks/{r['name']}.ipynb) | {r['status']} | {r['duration_s']:.1f} | "
                     f"{r.get('papermill_overhead_s') or 0:.2f} |" for r in summary["runbooks"])
    chart = _history_chart(out_dir, history, (summary.get("rollback") or {}).get("budget_s"))
    text = f"""# Acceptance (CoS) report

## What it is

The acceptance criteria of upgrade-infra, each with the evidence that proved it in the run of
**{summary['generated_at']}** against the reference stack: the runbook that proved it (its executed
output is linked), the measured figure, and the verdict. Overall: **{'PASS' if all_ok else 'FAIL'}**.

| criterion | evidence | measured | verdict |
| --- | --- | --- | --- |
{chr(10).join(rows)}

## Runbooks of this run

| runbook | status | seconds | Papermill overhead (s) |
| --- | --- | --- | --- |
{runs}

## Rollback time history

{f'![rollback time of the last runs]({chart})' if chart else 'No rollback time recorded yet.'}

## How to run it

`nox -s site` executes every runbook, checks that all passed and that the rollback drill met its
budget, and only then rebuilds this site; `reports/latest/summary.json` holds the same figures.

## Troubleshooting

A row marked fail links to the executed runbook: its header says where it failed. The site you are
reading is only published when the gate passes, so a failing row here means a criterion's figure
was missing from the run, not that the gate was skipped.
"""
    path = out_dir / "cos-report.md"
    path.write_text(text)
    return path
