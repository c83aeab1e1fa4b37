"""Helpers for runbook cells: short calls that display results and record the run's key figures.

Cells stay one-liners: ``s = nb.start(stack, state_dir)``, ``nb.table(rows)``, ``nb.finish({...})``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .redact import scrub
from .runbooks import RESULT_ENV
from .session import Session, session

_figures: dict[str, Any] = {}


REFERENCE_STACK = "../examples/pa-stack/stack.yaml"  # relative to runbooks/, where runbooks execute


def start(stack: str | None = None, state_dir: str | None = None) -> Session:
    """The session a runbook works in: ``stack`` or ``$UPGRADE_INFRA_STACK`` or the reference stack."""
    _figures.clear()
    return session(stack or os.environ.get("UPGRADE_INFRA_STACK") or REFERENCE_STACK, state_dir)


def record(**figures: Any) -> None:
    """Key figures of this run; they land in the runbook's result JSON."""
    _figures.update(figures)
    path = os.environ.get(RESULT_ENV)
    if path:
        Path(path).write_text(scrub(json.dumps(_figures, default=str)))


def table(rows: Iterable[Mapping[str, Any]] | Mapping[str, Any], title: str | None = None) -> Any:
    """Render rows (or one mapping) as an HTML table in the notebook; plain text elsewhere."""
    rows = [dict(rows)] if isinstance(rows, Mapping) else [dict(r) for r in rows]
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    try:
        from IPython.display import HTML

        head = "".join(f"<th>{c}</th>" for c in cols)
        body = "".join("<tr>" + "".join(f"<td>{_fmt(r.get(c))}</td>" for c in cols) + "</tr>" for r in rows)
        cap = f"<caption>{title}</caption>" if title else ""
        return HTML(scrub(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"))
    except ImportError:  # pragma: no cover - outside Jupyter
        return "\n".join(" | ".join(_fmt(r.get(c)) for c in cols) for r in rows)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.3f}"
    if isinstance(v, dict | list):
        return json.dumps(v, default=str)
    return "" if v is None else str(v)


def finish(result: Mapping[str, Any]) -> Any:
    """Record the run's result and show it as JSON (the last cell of every runbook)."""
    record(**result)
    try:
        from IPython.display import JSON

        return JSON(json.loads(scrub(json.dumps(dict(result), default=str))), expanded=True)
    except ImportError:  # pragma: no cover
        return dict(result)
