"""Helpers for runbook cells: short calls that display results and record the run's key figures.

Cells stay one-liners: ``s = nb.start(stack, state_dir)``, ``nb.table(rows)``, ``nb.finish({...})``.

Everything shown is made for a reader, not a parser: human column names (``duration_s`` is
"Duration (s)"), booleans as yes/no, ``{"assistant": "1.1.0"}`` as "assistant 1.1.0", nested
results as nested tables, machine paths shortened to the part that means something, and the
bookkeeping rows a migration tool keeps (``alembic_version``) left out of quarantine listings, as
the CLI does. The full values stay in the run's result JSON (``record``).
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from upgrade_infra.core.redact import scrub
from upgrade_infra.core.results import Result, plain
from upgrade_infra.docsite.runbooks import RESULT_ENV
from upgrade_infra.operations.session import Session, session

_figures: dict[str, Any] = {}


REFERENCE_STACK = "../examples/pa-stack/stack.yaml"  # relative to runbooks/, where runbooks execute

# words a generic "snake_case → Words" would get wrong
_WORDS = {"ok": "OK", "id": "ID", "url": "URL", "api": "API", "db": "database", "mb": "MB", "gb": "GB",
          "sql": "SQL", "wal": "WAL", "pid": "PID", "http": "HTTP", "ttl": "TTL", "p50": "p50", "p95": "p95",
          "p99": "p99", "rss": "RSS", "cpu": "CPU", "dr": "DR", "json": "JSON"}
_UNITS = {"s": "s", "ms": "ms", "mb": "MB", "gb": "GB", "pct": "%", "bytes": "bytes", "per_s": "/s"}
_COLUMNS = {"rows_new": "New rows", "rows_gone": "Rows gone", "mb_per_s": "MB/s", "copy_mb_per_s": "Copy (MB/s)",
            "start_s": "Start (s)", "by": "Written by", "export": "Exported to", "op": "Operation",
            "status": "Status", "step": "Step", "up_s": "Up in (s)"}
_ABS_PATH = re.compile(r"(?<![\w:/.-])(/(?:[\w.@+-]+/)+[\w.@+-]*)")
_STATE_DIRS = ("reports", "snapshots", "quarantine", "dr-backup", "environments", "envs", "staging", "journal",
               "secrets", "runbooks", "docs")


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


# -- making values readable (pure functions) ---------------------------------------------------
def human(column: str) -> str:
    """``duration_s`` → "Duration (s)", ``rows_new`` → "New rows", ``p95_ms`` → "p95 (ms)"."""
    if column in _COLUMNS:
        return _COLUMNS[column]
    if not re.fullmatch(r"[a-z0-9_]+", column):
        return column[:1].upper() + column[1:]  # already prose ("smoke passed", "versions now")
    parts = column.split("_")
    unit = None
    if len(parts) > 2 and "_".join(parts[-2:]) == "per_s":
        unit, parts = "/s", parts[:-2]
    elif len(parts) > 1 and parts[-1] in _UNITS:
        unit, parts = _UNITS[parts[-1]], parts[:-1]
    words = " ".join(_WORDS.get(p, p) for p in parts)
    if parts[0] not in ("p50", "p95", "p99"):
        words = words[:1].upper() + words[1:]
    return f"{words} ({unit})" if unit else words


def short_path(text: str) -> str:
    """Machine paths in ``text`` cut to what tells the reader something: the part from the state
    dir's well-known folders on (``…/snapshots/rp-3``), else the last two components."""
    def cut(m: re.Match) -> str:
        parts = [p for p in m.group(1).split("/") if p]
        for i, p in enumerate(parts):
            if p in _STATE_DIRS:
                return "…/" + "/".join(parts[i:])
        return "…/" + "/".join(parts[-2:]) if len(parts) > 2 else m.group(1)
    return _ABS_PATH.sub(cut, text)


_COMMAND = re.compile(r"(?:^|[\s/])(psql|pg_dump|pg_restore|curl|sha256sum)\s")
_PY_DICT = re.compile(r"\{'[^{}]*\}")


def prose(text: str) -> str:
    """A caption made readable: machine paths shortened, Python dict reprs that slipped into an
    f-string (``{'passed': 15, 'failed': 0}``) written as words (``15 passed, 0 failed``)."""
    import ast

    def words(m: re.Match) -> str:
        try:
            d = ast.literal_eval(m.group(0))
        except (ValueError, SyntaxError):
            return m.group(0)
        if not isinstance(d, dict):
            return m.group(0)
        return ", ".join(f"{v} {k}" if isinstance(v, int | float) and not isinstance(v, bool) else f"{k} {v}"
                         for k, v in d.items())
    return short_path(_PY_DICT.sub(words, text))


def _scalar(v: Any) -> str:
    """One value as escaped HTML."""
    if v is None:
        return '<span class="uinfra-none">–</span>'
    if isinstance(v, bool):
        return '<span class="uinfra-yes">✔ yes</span>' if v else '<span class="uinfra-no">✘ no</span>'
    if isinstance(v, float):
        return f"{v:,.3f}".rstrip("0").rstrip(".") if abs(v) < 1000 else f"{v:,.1f}"
    if isinstance(v, int):
        return str(v)  # no thousands separators: ports, ids and counts read as they are typed
    text = short_path(str(v))
    if len(text) > 100 and _COMMAND.search(text):  # a long shell command: folded, shown on demand
        first = _COMMAND.search(text).group(1)
        return (f'<details class="uinfra-cmd"><summary>{html.escape(first)} command</summary>'
                f"<code>{html.escape(text)}</code></details>")
    return html.escape(text)


def _is_versions(v: Any) -> bool:
    """``{"assistant": "1.1.0", ...}``: short enough to read inline as "assistant 1.1.0, …"."""
    return isinstance(v, Mapping) and bool(v) and all(isinstance(x, str) and len(x) < 40 for x in v.values())


def cell(v: Any) -> str:
    """Any value as HTML for a table cell: scalars readable, flat mappings as ``key value`` pairs,
    lists of scalars comma-separated, anything nested as a nested table."""
    if isinstance(v, Mapping):
        if not v:
            return '<span class="uinfra-none">–</span>'
        if _is_versions(v):
            return ", ".join(f"{html.escape(str(k))} {_scalar(x)}" for k, x in v.items())
        return _kv_table(v)
    if isinstance(v, list | tuple | set | frozenset):
        items = list(v)
        if not items:
            return '<span class="uinfra-none">none</span>'
        if all(isinstance(x, Mapping) for x in items):
            return _rows_table(items)
        return ", ".join(cell(x) for x in items)
    return _scalar(v)


def _columns(rows: list[Mapping[str, Any]]) -> list[str]:
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    return cols


def _rows_table(rows: list[Mapping[str, Any]], caption: str | None = None) -> str:
    cols = _columns(rows)
    head = "".join(f"<th>{html.escape(human(str(c)))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c))}</td>" for c in cols) + "</tr>" for r in rows)
    cap = f"<caption>{html.escape(prose(caption))}</caption>" if caption else ""
    return f'<table class="uinfra-table">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _kv_table(mapping: Mapping[str, Any], caption: str | None = None) -> str:
    body = "".join(f"<tr><th scope=\"row\">{html.escape(human(str(k)))}</th><td>{cell(v)}</td></tr>"
                   for k, v in mapping.items())
    cap = f"<caption>{html.escape(prose(caption))}</caption>" if caption else ""
    return f'<table class="uinfra-table uinfra-kv">{cap}<tbody>{body}</tbody></table>'


def _is_bookkeeping(row: Mapping[str, Any]) -> bool:
    """A migration tool's own version table in a quarantine listing (the CLI hides them too)."""
    from upgrade_infra.restore.quarantine import BOOKKEEPING

    if row.get("bookkeeping") is True:
        return True
    table_name = str(row.get("table") or row.get("table_name") or "").rsplit(".", 1)[-1]
    return "rows_new" in row and table_name in BOOKKEEPING


class Shown:
    """What a helper returns: HTML for the notebook and the site, readable text elsewhere (never
    ``<IPython.core.display.… object>``)."""

    def __init__(self, html_text: str, text: str) -> None:
        self.html, self.text = html_text, text

    def _repr_html_(self) -> str:
        return f'<div class="uinfra-scroll">{self.html}</div>'

    def __repr__(self) -> str:
        return self.text


def _plain(rows: list[Mapping[str, Any]], caption: str | None) -> str:
    cols = _columns(rows)
    strip = lambda s: re.sub(r"<[^>]+>", "", s).replace("&gt;", ">").replace("&lt;", "<").replace("&amp;", "&")  # noqa: E731
    lines = [prose(caption)] if caption else []
    lines.append(" | ".join(human(str(c)) for c in cols))
    lines += [" | ".join(strip(cell(r.get(c))) if not isinstance(r.get(c), Mapping | list) or _is_versions(r.get(c))
                         else json.dumps(r.get(c), default=str) for c in cols) for r in rows]
    return short_path("\n".join(lines))


def table(rows: Iterable[Mapping[str, Any]] | Mapping[str, Any] | Result, title: str | None = None) -> Shown:
    """Rows (a table) or one mapping (a two-column key/value table), made readable. A typed result
    (or a list of them) is shown as its ``to_dict()``: the same table as the JSON document."""
    if isinstance(rows, Result):
        rows = rows.to_dict()
    elif not isinstance(rows, Mapping):
        rows = [r.to_dict() if isinstance(r, Result) else r for r in rows]
    if isinstance(rows, Mapping):
        mapping = dict(rows)
        return Shown(scrub(_kv_table(mapping, title)), scrub(_plain([mapping], title)))
    rows = [dict(r) for r in rows if not _is_bookkeeping(r)]
    if not rows:
        return Shown(scrub(f'<p class="uinfra-empty"><em>{html.escape(prose(title or ""))}: nothing to '
                           f"show</em></p>"), scrub(f"{prose(title or '')}: nothing to show"))
    return Shown(scrub(_rows_table(rows, title)), scrub(_plain(rows, title)))


def finish(result: Mapping[str, Any]) -> Shown:
    """Record the run's result and show it as a table (the last cell of every runbook)."""
    result = plain(dict(result))
    record(**result)
    data = json.loads(scrub(json.dumps(dict(result), default=str)))
    sections = {k: v for k, v in data.items() if isinstance(v, Mapping) and v and not _is_versions(v)}
    flat = {k: v for k, v in data.items() if k not in sections}
    parts = [_kv_table(flat, "Result")] if flat else []
    parts += [_kv_table(v, f"Result: {human(k)}") for k, v in sections.items()]
    text = json.dumps(data, indent=1, default=str)
    return Shown(scrub("".join(parts)), scrub(short_path(text)))
