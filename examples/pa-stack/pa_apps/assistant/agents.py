"""/api/agents and their memories (tags from release 1.1.0 on)."""
from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.engine import Connection

from pa_apps.common.web import Ctx, row_or_404

router = APIRouter(prefix="/api/agents", tags=["agents"])

_AGENT = "SELECT id, user_id, name, system_prompt, created_at FROM agents"


class AgentIn(BaseModel):
    user_id: int
    name: str = Field(min_length=1)
    system_prompt: str = ""


class MemoryIn(BaseModel):
    key: str = Field(min_length=1)
    content: str
    tags: list[str] = []


def require_agent(conn: Connection, agent_id: int) -> dict:
    return row_or_404(conn, f"{_AGENT} WHERE id = :id", {"id": agent_id}, f"agent {agent_id}")


@router.get("")
def list_agents(
    ctx: Ctx,
    user_id: int | None = None,
    limit: int = Query(100, ge=1, le=1000),
):
    where = "WHERE user_id = :user_id" if user_id is not None else ""
    sql = f"{_AGENT} {where} ORDER BY id LIMIT :limit"
    with ctx.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(sql), {"user_id": user_id, "limit": limit})]


@router.post("", status_code=201)
def create_agent(ctx: Ctx, body: AgentIn):
    with ctx.engine.begin() as conn:
        if not conn.execute(text("SELECT 1 FROM users WHERE id = :id"), {"id": body.user_id}).first():
            raise HTTPException(404, f"user {body.user_id} not found")
        row = conn.execute(
            text(
                "INSERT INTO agents (user_id, name, system_prompt) VALUES (:user_id, :name, :prompt) "
                "RETURNING id, user_id, name, system_prompt, created_at"
            ),
            {"user_id": body.user_id, "name": body.name, "prompt": body.system_prompt},
        ).one()
    return dict(row._mapping)


@router.get("/{agent_id}")
def get_agent(ctx: Ctx, agent_id: int):
    with ctx.engine.connect() as conn:
        return require_agent(conn, agent_id)


def _list_memories(conn: Connection, agent_id: int, with_tags: bool) -> list[dict]:
    tags = (
        ", COALESCE((SELECT array_agg(t.tag ORDER BY t.tag) FROM memory_tags t "
        "WHERE t.memory_id = m.id), '{}') AS tags"
        if with_tags
        else ""
    )
    sql = f"SELECT m.id, m.agent_id, m.key, m.content, m.created_at{tags} FROM memories m WHERE m.agent_id = :a ORDER BY m.id"
    return [dict(r._mapping) for r in conn.execute(text(sql), {"a": agent_id})]


@router.get("/{agent_id}/memory")
def list_memories(ctx: Ctx, agent_id: int):
    with ctx.engine.connect() as conn:
        require_agent(conn, agent_id)
        return _list_memories(conn, agent_id, ctx.features.memory_tags)


@router.post("/{agent_id}/memory", status_code=201)
def upsert_memory(ctx: Ctx, agent_id: int, body: MemoryIn):
    """Create the memory, or replace the content of the agent's memory with that key."""
    with ctx.engine.begin() as conn:
        require_agent(conn, agent_id)
        memory = dict(conn.execute(
            text(
                "INSERT INTO memories (agent_id, key, content) VALUES (:a, :k, :c) "
                "ON CONFLICT (agent_id, key) DO UPDATE SET content = EXCLUDED.content "
                "RETURNING id, agent_id, key, content, created_at"
            ),
            {"a": agent_id, "k": body.key.strip(), "c": body.content},
        ).one()._mapping)
        if ctx.features.memory_tags:
            tags = sorted({t.strip().lower() for t in body.tags if t.strip()})
            for tag in tags:
                conn.execute(
                    text("INSERT INTO memory_tags (memory_id, tag) VALUES (:m, :t) ON CONFLICT DO NOTHING"),
                    {"m": memory["id"], "t": tag},
                )
            memory["tags"] = conn.execute(
                text("SELECT tag FROM memory_tags WHERE memory_id = :m ORDER BY tag"), {"m": memory["id"]}
            ).scalars().all()
    return memory
