"""/api/executions and /api/stats."""
from __future__ import annotations

from fastapi import APIRouter, Query
from sqlalchemy import text

from pa_apps.common.db import table_counts
from pa_apps.common.service import ServiceContext
from pa_apps.common.web import Ctx, row_or_404

router = APIRouter(prefix="/api", tags=["executions"])


def _columns(ctx: ServiceContext) -> str:
    cols = "id, workflow_id, status, input, output, started_at, finished_at"
    return cols + (", duration_ms" if ctx.features.duration_ms else "")


@router.get("/executions/{execution_id}")
def get_execution(ctx: Ctx, execution_id: int):
    with ctx.engine.connect() as conn:
        return row_or_404(conn, f"SELECT {_columns(ctx)} FROM executions WHERE id = :id", {"id": execution_id},
                          f"execution {execution_id}")


@router.get("/executions")
def list_executions(
    ctx: Ctx,
    workflow_id: int | None = None,
    status: str | None = None,
    limit: int = Query(20, ge=1, le=500),
):
    filters = ["TRUE"]
    if workflow_id is not None:
        filters.append("workflow_id = :w")
    if status is not None:
        filters.append("status = :s")
    sql = f"SELECT {_columns(ctx)} FROM executions WHERE {' AND '.join(filters)} ORDER BY id DESC LIMIT :limit"
    with ctx.engine.connect() as conn:
        rows = conn.execute(text(sql), {"w": workflow_id, "s": status, "limit": limit})
        return [dict(r._mapping) for r in rows]


@router.get("/stats")
def stats(ctx: Ctx):
    with ctx.engine.connect() as conn:
        return table_counts(conn, ["workflows", "executions"])
