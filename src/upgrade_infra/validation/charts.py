"""Charts of a validation run against its baseline (matplotlib, no pyplot state), for the runbook and site.

Each function draws one PNG into the run's report dir and returns it as an ``IPython.display.Image``
when IPython is present (so a notebook cell shows it), else the file's path.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from upgrade_infra.validation.baseline import Baseline
    from upgrade_infra.validation.engine import ValidationReport

NOW, BASE = "#1f6feb", "#9aa4b2"


def rows(report: ValidationReport) -> list[dict[str, Any]]:
    """One table row per check (for ``nb.table``)."""
    return [{"suite": r.suite, "check": r.name, "kind": r.kind, "result": r.status, "seconds": r.duration_s,
             "message": r.message[:200]} for r in report.results]


def _figure(height: float):
    from upgrade_infra.core.extras import require

    Figure = require("matplotlib.figure", "validation charts").Figure
    return Figure(figsize=(9, height), dpi=100, layout="constrained")


def _show(fig, path: Path) -> Any:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    try:
        from IPython.display import Image

        return Image(filename=str(path))
    except ImportError:  # pragma: no cover - outside Jupyter
        return path


def durations_chart(report: ValidationReport, baseline: Baseline | None) -> Any:
    """Seconds per check, this run beside the baseline's."""
    names = [r.name for r in report.results]
    now = [r.duration_s for r in report.results]
    base = [((baseline.metrics(n) or {}).get("duration_s") if baseline else None) or 0 for n in names]
    fig = _figure(0.32 * len(names) + 1.2)
    ax = fig.add_subplot()
    ys = range(len(names))
    ax.barh([y + 0.2 for y in ys], now, height=0.4, color=[NOW if r.passed else "#d1242f" for r in report.results],
            label=f"{report.env} (this run)")
    if baseline:
        ax.barh([y - 0.2 for y in ys], base, height=0.4, color=BASE, label=f"baseline {baseline.label}")
    ax.set_yticks(list(ys), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds")
    ax.set_title("check durations (red: failed)")
    ax.legend(loc="upper right", fontsize=8)
    return _show(fig, report.report_dir / "durations.png")


def latency_chart(report: ValidationReport, baseline: Baseline | None) -> Any:
    """p50/p95/p99 of every performance check against the baseline, and this run's latency CDF."""
    perf = [r for r in report.results if r.kind == "performance" and r.details.get("metrics")]
    fig = _figure(3.4 * max(1, len(perf)))
    if not perf:
        fig.text(0.5, 0.5, "no performance check in this run", ha="center")
        return _show(fig, report.report_dir / "latency.png")
    for i, r in enumerate(perf):
        m, ref = r.details["metrics"], (baseline.metrics(r.name) if baseline else None) or {}
        ax = fig.add_subplot(len(perf), 2, 2 * i + 1)
        qs = ["p50_ms", "p95_ms", "p99_ms"]
        xs = range(len(qs))
        ax.bar([x - 0.2 for x in xs], [m[q] for q in qs], width=0.4, color=NOW, label="this run")
        if ref:
            ax.bar([x + 0.2 for x in xs], [ref.get(q, 0) for q in qs], width=0.4, color=BASE,
                   label=f"baseline {baseline.label}")
        ax.set_xticks(list(xs), ["p50", "p95", "p99"])
        ax.set_ylabel("ms")
        ax.set_title(f"{r.name}: {m['requests']} req, c={m['concurrency']}, {m['rps']:.0f} req/s", fontsize=9)
        ax.legend(fontsize=7)
        cdf = r.details.get("cdf_ms") or []
        ax2 = fig.add_subplot(len(perf), 2, 2 * i + 2)
        ax2.plot(cdf, [5 * k for k in range(len(cdf))], color=NOW)
        for q in ("p95_ms", "p99_ms"):
            if ref.get(q):
                ax2.axvline(ref[q], color=BASE, linestyle="--", linewidth=1)
        ax2.set_xlabel("latency ms (dashed: baseline p95, p99)")
        ax2.set_ylabel("% of requests")
        ax2.set_title("latency distribution", fontsize=9)
    return _show(fig, report.report_dir / "latency.png")
