"""The assistant's deterministic 'model': recall memories named in the text."""
from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection


def recall(conn: Connection, agent_id: int, message: str, column: str) -> list[tuple[str, str]]:
    """Memories of the agent whose key occurs (case-insensitively) in ``message``.

    ``column`` comes from the release's feature flags (never from a request);
    release 1.2.0 names a column that does not exist, which is its bug.
    """
    rows = conn.execute(
        text(
            f"SELECT key, {column} AS content FROM memories "
            "WHERE agent_id = :agent AND strpos(lower(:message), lower(key)) > 0 ORDER BY id"
        ),
        {"agent": agent_id, "message": message},
    )
    return [(r.key, r.content) for r in rows]


def compose_reply(agent_name: str, message: str, memories: list[tuple[str, str]]) -> str:
    said = " ".join(message.split())
    if len(said) > 120:
        said = said[:117] + "..."
    reply = f'{agent_name} here. You said: "{said}".'
    if memories:
        reply += " I remember: " + "; ".join(f"{key}: {content}" for key, content in memories) + "."
    else:
        reply += " I have nothing in memory about that."
    return reply
