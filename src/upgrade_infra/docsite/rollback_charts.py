"""The rollback drill's timeline chart: upgrade steps, then rollback steps, against the budget."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from upgrade_infra.operations.results import UpgradeResult


def timeline_rows(res: UpgradeResult) -> tuple[list[dict[str, Any]], float]:
    """The bars (upgrade steps, then the rollback's steps shifted to when it started) and that start."""
    assert res.rollback is not None, "an upgrade that was rolled back"
    rb_start = res.steps[-1]["start_s"] + res.steps[-1]["duration_s"]
    rows = [*res.steps, *[{**t, "start_s": rb_start + t["start_s"], "step": "rollback: " + t["step"]}
                          for t in res.rollback.steps]]
    return rows, rb_start


def x_limit(rows: list[dict[str, Any]]) -> float:
    """The axis ends a little after the last step: the bars fill the chart whatever the budget."""
    end = max((r["start_s"] + r["duration_s"] for r in rows), default=1.0)
    return max(end * 1.08, 1.0)


def timeline(res: UpgradeResult, version: str) -> Any:
    """A horizontal bar per step of the upgrade ``res`` and of its automatic rollback.

    The axis is zoomed to the steps; the budget line is drawn when it falls inside, else the
    title and a note at the right edge say how far away it is."""
    from upgrade_infra.core.extras import require

    plt = require("matplotlib.pyplot", "the rollback timeline chart")
    rows, rb_start = timeline_rows(res)
    rb = res.rollback
    assert rb is not None
    limit = x_limit(rows)
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.32 * len(rows)))
    colors = ["tab:red" if r["status"] == "failed" else "tab:green" if r["step"].startswith("rollback") else
              "tab:blue" for r in rows]
    ax.barh([r["step"] for r in rows], [max(r["duration_s"], limit / 300) for r in rows],
            left=[r["start_s"] for r in rows], color=colors)
    budget_at = rb_start + rb.budget_s
    if budget_at <= limit:
        ax.axvline(budget_at, color="black", linestyle="--", label=f"rollback budget ({rb.budget_s:.0f} s)")
        ax.legend(loc="lower right")
    else:
        ax.annotate(f"budget ends at {budget_at:.0f} s →", xy=(1, 0.02), xycoords="axes fraction",
                    ha="right", va="bottom", fontsize=8)
    ax.axvline(rb_start, color="grey", linestyle=":", linewidth=1)
    ax.set_xlim(0, limit)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the upgrade started")
    share = 100 * rb.total_s / rb.budget_s if rb.budget_s else 0
    ax.set_title(f"upgrade to {version}, then automatic rollback: {rb.total_s:.1f} s "
                 f"({share:.1f} % of the {rb.budget_s:.0f} s budget)")
    fig.tight_layout()
    return fig
