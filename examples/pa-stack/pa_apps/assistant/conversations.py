"""/api/conversations and messages (attachments live under PA_DATA_DIR)."""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.engine import Connection

from pa_apps.assistant.agents import require_agent
from pa_apps.assistant.reply import compose_reply, recall
from pa_apps.common.web import Ctx, row_or_404

router = APIRouter(prefix="/api", tags=["conversations"])

ATTACHMENTS = "attachments"


class ConversationIn(BaseModel):
    agent_id: int
    title: str = "New conversation"


class MessageIn(BaseModel):
    text: str
    attachment: str | None = None


def attachment_relpath(message_id: int) -> str:
    """Stored in messages.attachment_path, relative to PA_DATA_DIR."""
    return f"{ATTACHMENTS}/{message_id}.txt"


def _insert_message(conn: Connection, conversation_id: int, role: str, content: str) -> int:
    return conn.execute(
        text("INSERT INTO messages (conversation_id, role, content) VALUES (:c, :r, :t) RETURNING id"),
        {"c": conversation_id, "r": role, "t": content},
    ).scalar_one()


def _store_attachment(conn: Connection, data_dir: Path, message_id: int, content: str) -> str:
    rel = attachment_relpath(message_id)
    path = data_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")
    conn.execute(text("UPDATE messages SET attachment_path = :p WHERE id = :id"), {"p": rel, "id": message_id})
    return rel


def _conversation(conn: Connection, conversation_id: int) -> dict:
    return row_or_404(conn, "SELECT id, agent_id, title, created_at FROM conversations WHERE id = :id",
                      {"id": conversation_id}, f"conversation {conversation_id}")


@router.post("/conversations", status_code=201)
def create_conversation(ctx: Ctx, body: ConversationIn):
    with ctx.engine.begin() as conn:
        require_agent(conn, body.agent_id)
        row = conn.execute(
            text("INSERT INTO conversations (agent_id, title) VALUES (:a, :t) RETURNING id, agent_id, title, created_at"),
            {"a": body.agent_id, "t": body.title},
        ).one()
    return dict(row._mapping)


@router.get("/conversations/{conversation_id}")
def get_conversation(ctx: Ctx, conversation_id: int):
    with ctx.engine.connect() as conn:
        conversation = _conversation(conn, conversation_id)
        rows = conn.execute(
            text(
                "SELECT id, role, content, attachment_path, created_at FROM messages "
                "WHERE conversation_id = :c ORDER BY created_at, id LIMIT 500"
            ),
            {"c": conversation_id},
        )
        conversation["messages"] = [dict(r._mapping) for r in rows]
    return conversation


@router.post("/conversations/{conversation_id}/messages", status_code=201)
def post_message(ctx: Ctx, conversation_id: int, body: MessageIn):
    with ctx.engine.begin() as conn:
        conversation = _conversation(conn, conversation_id)
        agent = require_agent(conn, conversation["agent_id"])
        message_id = _insert_message(conn, conversation_id, "user", body.text)
        attachment = None
        if body.attachment is not None:
            attachment = _store_attachment(conn, ctx.settings.data_dir, message_id, body.attachment)
        memories = recall(conn, agent["id"], body.text, ctx.features.recall_column)
        reply = compose_reply(agent["name"], body.text, memories)
        reply_id = _insert_message(conn, conversation_id, "assistant", reply)
    return {
        "conversation_id": conversation_id,
        "message_id": message_id,
        "reply_id": reply_id,
        "reply": reply,
        "memories_used": [key for key, _ in memories],
        "attachment_path": attachment,
    }


@router.get("/messages/{message_id}/attachment", response_class=PlainTextResponse)
def get_attachment(ctx: Ctx, message_id: int):
    with ctx.engine.connect() as conn:
        rel = conn.execute(
            text("SELECT attachment_path FROM messages WHERE id = :id"), {"id": message_id}
        ).scalar_one_or_none()
    if not rel:
        raise HTTPException(404, f"message {message_id} has no attachment")
    path = ctx.settings.data_dir / rel
    if not path.is_file():
        raise HTTPException(404, f"attachment file {rel} is missing from PA_DATA_DIR")
    return path.read_text(encoding="utf-8")
