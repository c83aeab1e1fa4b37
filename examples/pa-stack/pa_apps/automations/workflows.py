"""/api/workflows - credentials are sealed with PA_SECRET_KEY at rest."""
from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.engine import Connection

from pa_apps.common.sealing import InvalidToken, Sealer
from pa_apps.common.web import Ctx, row_or_404

router = APIRouter(prefix="/api/workflows", tags=["workflows"])

_SUMMARY = "id, name, agent_id, webhook_token, active, created_at"


class WorkflowIn(BaseModel):
    name: str = Field(min_length=1)
    agent_id: int
    credentials: dict[str, Any] = {}
    active: bool = True


class CredentialsError(RuntimeError):
    pass


def get_sealer(request: Request) -> Sealer:
    return request.app.state.sealer


SealerDep = Annotated[Sealer, Depends(get_sealer)]


def open_credentials(sealer: Sealer, workflow_id: int, token: str) -> dict:
    try:
        return sealer.open_json(token)
    except InvalidToken as exc:
        raise CredentialsError(
            f"cannot decrypt credentials of workflow {workflow_id}: {exc}"
        ) from None


def mask(credentials: dict) -> dict:
    def one(value) -> str:
        value = str(value)
        return "****" + value[-4:] if len(value) >= 12 else "****"

    return {key: one(value) for key, value in credentials.items()}


def load_workflow(conn: Connection, workflow_id: int) -> dict:
    return row_or_404(conn, f"SELECT {_SUMMARY}, credentials_encrypted FROM workflows WHERE id = :id",
                      {"id": workflow_id}, f"workflow {workflow_id}")


@router.get("")
def list_workflows(ctx: Ctx):
    with ctx.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(f"SELECT {_SUMMARY} FROM workflows ORDER BY id"))]


@router.post("", status_code=201)
def create_workflow(ctx: Ctx, sealer: SealerDep, body: WorkflowIn):
    params = {
        "name": body.name,
        "agent_id": body.agent_id,
        "token": secrets.token_urlsafe(24),
        "creds": sealer.seal_json(body.credentials),
        "active": body.active,
    }
    with ctx.engine.begin() as conn:
        row = conn.execute(
            text(
                "INSERT INTO workflows (name, agent_id, webhook_token, credentials_encrypted, active) "
                f"VALUES (:name, :agent_id, :token, :creds, :active) RETURNING {_SUMMARY}"
            ),
            params,
        ).one()
    return dict(row._mapping)


@router.get("/{workflow_id}")
def get_workflow(ctx: Ctx, sealer: SealerDep, workflow_id: int):
    """Reading a workflow decrypts its credentials: a wrong PA_SECRET_KEY is a 500."""
    with ctx.engine.connect() as conn:
        workflow = load_workflow(conn, workflow_id)
    token = workflow.pop("credentials_encrypted")
    try:
        workflow["credentials"] = mask(open_credentials(sealer, workflow_id, token))
    except CredentialsError as exc:
        raise HTTPException(500, str(exc)) from None
    return workflow
