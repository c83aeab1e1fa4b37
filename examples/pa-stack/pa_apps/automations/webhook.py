"""POST /webhook/{token} - the trigger of a workflow execution."""
from __future__ import annotations

import json

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict
from sqlalchemy import text

from pa_apps.common.web import Ctx

router = APIRouter(tags=["webhook"])


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    text: str


@router.post("/webhook/{token}", status_code=202)
def trigger(ctx: Ctx, token: str, body: WebhookIn, request: Request):
    if not ctx.settings.triggers_enabled:
        raise HTTPException(503, "triggers disabled")
    with ctx.engine.begin() as conn:
        workflow = conn.execute(
            text("SELECT id, active FROM workflows WHERE webhook_token = :t"), {"t": token}
        ).first()
        if workflow is None:
            raise HTTPException(404, "unknown webhook")
        if not workflow.active:
            raise HTTPException(409, f"workflow {workflow.id} is inactive")
        execution_id = conn.execute(
            text(
                "INSERT INTO executions (workflow_id, status, input) "
                "VALUES (:w, 'running', CAST(:input AS jsonb)) RETURNING id"
            ),
            {"w": workflow.id, "input": json.dumps(body.model_dump())},
        ).scalar_one()
    request.app.state.runner.submit(execution_id)
    return {"execution_id": execution_id, "workflow_id": workflow.id}
