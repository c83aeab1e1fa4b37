"""/api/stats and the human-facing /status page."""
from __future__ import annotations

from html import escape

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from pa_apps.common.db import table_counts
from pa_apps.common.service import ServiceContext
from pa_apps.common.web import Ctx

router = APIRouter(tags=["status"])

BASE_TABLES = ["users", "agents", "memories", "conversations", "messages"]


def tables(ctx: ServiceContext) -> list[str]:
    return BASE_TABLES + (["memory_tags"] if ctx.features.memory_tags else [])


@router.get("/api/stats")
def stats(ctx: Ctx):
    with ctx.engine.connect() as conn:
        return table_counts(conn, tables(ctx))


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>PA Assistant status</title>
<style>body{{font-family:sans-serif;margin:2em}} .ok{{color:#17803d}} .bad{{color:#b42318}}
table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:.3em .8em;text-align:left}}</style>
</head><body>
<h1>PA Assistant status</h1>
<p class="{css}" id="overall">{headline}</p>
<p>Release <strong id="release">{release}</strong> (schema head {head})</p>
{table}
</body></html>
"""


@router.get("/status", response_class=HTMLResponse)
def status_page(ctx: Ctx):
    try:
        with ctx.engine.connect() as conn:
            counts = table_counts(conn, tables(ctx))
        css, headline, code = "ok", "All systems operational", 200
    except Exception as exc:
        counts, css, code = {}, "bad", 503
        headline = "Database unreachable: " + str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    rows = "".join(f"<tr><td>{escape(t)}</td><td>{n}</td></tr>" for t, n in counts.items())
    table = f"<table><tr><th>Table</th><th>Rows</th></tr>{rows}</table>" if counts else ""
    html = _PAGE.format(
        css=css, headline=escape(headline), release=escape(ctx.release.version), head=ctx.head, table=table
    )
    return HTMLResponse(html, status_code=code)
