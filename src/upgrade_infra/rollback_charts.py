"""The rollback drill's timeline chart: upgrade steps, then rollback steps, against the budget."""

from __future__ import annotations

from typing import Any


def timeline(res: dict[str, Any], version: str) -> Any:
    """A horizontal bar per step of the upgrade ``res`` and of its automatic rollback."""
    from .extras import require

    plt = require("matplotlib.pyplot", "the rollback timeline chart")

    rb = res["rollback"]
    fig, ax = plt.subplots(figsize=(9, 4))
    rb_start = res["steps"][-1]["start_s"] + res["steps"][-1]["duration_s"]
    rows = [*res["steps"], *[{**t, "start_s": rb_start + t["start_s"], "step": "rollback: " + t["step"]}
                             for t in rb["steps"]]]
    colors = ["tab:red" if r["status"] == "failed" else "tab:green" if r["step"].startswith("rollback") else
              "tab:blue" for r in rows]
    ax.barh([r["step"] for r in rows], [max(r["duration_s"], 0.3) for r in rows],
            left=[r["start_s"] for r in rows], color=colors)
    ax.axvline(rb_start + rb["budget_s"], color="black", linestyle="--",
               label=f"rollback budget ({rb['budget_s']:.0f}s)")
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the upgrade started")
    ax.legend(loc="lower right")
    ax.set_title(f"upgrade to {version}, then automatic rollback: {rb['total_s']:.1f}s of {rb['budget_s']:.0f}s")
    fig.tight_layout()
    return fig
