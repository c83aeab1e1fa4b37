"""The acceptance (conditions of satisfaction) report page, generated from the last run's results."""

from __future__ import annotations

import json
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
]


def _figures(latest: Path, name: str) -> dict:
    p = latest / f"{name}.json"
    return json.loads(p.read_text()).get("figures", {}) if p.exists() else {}


def _merged(latest: Path, names: list[str]) -> dict:
    out: dict = {}
    for n in reversed(names):  # the first runbook named wins
        out.update(_figures(latest, n))
    return out


def _history_chart(out_dir: Path, history: list[dict]) -> str | None:
    points = [(h["at"], h["rollback_s"]) for h in history if isinstance(h.get("rollback_s"), int | float)]
    if not points:
        return None
    from .extras import pyplot

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(7, 2.8))
    ax.plot(range(len(points)), [p[1] for p in points], marker="o")
    ax.set_xticks(range(len(points)), [p[0][5:16].replace("T", " ") for p in points], rotation=30, fontsize=7)
    ax.set_ylabel("rollback total (s)")
    ax.set_ylim(bottom=0)
    ax.set_title("rollback drill: total time of the last runs (budget 300 s)")
    fig.tight_layout()
    fig.savefig(out_dir / "rollback-history.png", dpi=110)
    plt.close(fig)
    return "rollback-history.png"


def write_report(out_dir: Path, summary: dict, history: list[dict], latest: Path) -> Path:
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
    rows.append(f"| Documentation: every runbook executed on the reference stack, site built with `--strict` | "
                f"[runbook index](../runbooks/index.md) | {len(summary['runbooks'])} runbooks, "
                f"{sum(r['status'] == 'passed' for r in summary['runbooks'])} passed, gate {summary['gate']} | "
                f"{'**PASS**' if docs_ok else '**FAIL**'} |")
    runs = "\n".join(f"| [{r['name']}](../runbooks/{r['name']}.ipynb) | {r['status']} | {r['duration_s']:.1f} | "
                     f"{r.get('papermill_overhead_s') or 0:.2f} |" for r in summary["runbooks"])
    chart = _history_chart(out_dir, history)
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
