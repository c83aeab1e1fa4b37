"""Seeding the assistant database (1.0.0 or 1.1.0+ schema, detected)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from pa_apps.common.names import split_full_name
from pa_apps.seed import people as P
from pa_apps.seed.sql import PHRASES, has_column, noise, noise_joins, phrase_expr, table_exists

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
MESSAGES_PER_CONVERSATION = 20
TITLES = [
    "Weekly planning", "Trip to Lisbon", "Groceries", "Taxes 2024", "Birthday party",
    "Job interview prep", "Reading list", "House move", "Garden", "Health checkup",
]
TABLES = ["users", "agents", "memories", "memory_tags", "conversations", "messages"]

_CONVERSATIONS = """
INSERT INTO conversations (agent_id, title, created_at)
SELECT (%(agents)s::int[])[1 + mod(c * 7, %(n_agents)s)],
       (%(titles)s::text[])[1 + mod(c, %(n_titles)s)] || ' #' || c,
       %(epoch)s::timestamptz + c * interval '340 seconds'
FROM generate_series(%(lo)s::int, %(hi)s::int) AS c ORDER BY c RETURNING id
"""

_MESSAGES = f"""
INSERT INTO messages (conversation_id, role, content, created_at)
SELECT (%(convs)s::int[])[1 + (g - %(lo)s) / {MESSAGES_PER_CONVERSATION}],
       CASE WHEN mod(g, 2) = 0 THEN 'user' ELSE 'assistant' END,
       left({phrase_expr()} || ' ' || {noise(4)}, 160 + mod(g::bigint * 7919, 1700)::int),
       %(epoch)s::timestamptz + g * interval '17 seconds'
FROM generate_series(%(lo)s::int, %(hi)s::int) AS g
{noise_joins(4)}
"""


class AssistantSeeder:
    def __init__(self, conn: psycopg.Connection):
        self.conn = conn
        self.split_names = has_column(conn, "users", "first_name")
        self.tags = table_exists(conn, "memory_tags")
        self.agent_ids: list[int] = []
        self.next_message = 0
        self.next_conversation = 0

    def user_count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM users").fetchone()[0]

    def _insert(self, sql: str, params) -> list[int]:
        """Run an INSERT ... ORDER BY ... RETURNING id; ids follow the select order."""
        return sorted(r[0] for r in self.conn.execute(sql, params).fetchall())

    def seed_people(self, users: int) -> None:
        persons = P.people(users)
        stamps = [EPOCH + timedelta(hours=i) for i in range(users)]
        emails = [p.email for p in persons]
        with self.conn.transaction():
            if self.split_names:
                first, last = zip(*(split_full_name(p.full_name) for p in persons), strict=True)
                user_ids = self._insert(
                    "INSERT INTO users (first_name, last_name, email, created_at) SELECT f, l, e, c "
                    "FROM unnest(%s::text[], %s::text[], %s::text[], %s::timestamptz[]) "
                    "WITH ORDINALITY AS t(f, l, e, c, n) ORDER BY n RETURNING id",
                    (list(first), list(last), emails, stamps),
                )
            else:
                user_ids = self._insert(
                    "INSERT INTO users (full_name, email, created_at) SELECT f, e, c "
                    "FROM unnest(%s::text[], %s::text[], %s::timestamptz[]) "
                    "WITH ORDINALITY AS t(f, e, c, n) ORDER BY n RETURNING id",
                    ([p.full_name for p in persons], emails, stamps),
                )
            owners, names, prompts = [], [], []
            for i, (uid, person) in enumerate(zip(user_ids, persons, strict=True)):
                for k in range(P.agents_for(i)):
                    owners.append(uid)
                    names.append(P.AGENT_NAMES[(i + k) % len(P.AGENT_NAMES)])
                    first_name = split_full_name(person.full_name)[0]
                    prompts.append(f"{P.PROMPTS[(i + k) % len(P.PROMPTS)]} The user is {first_name}.")
            self.agent_ids = self._insert(
                "INSERT INTO agents (user_id, name, system_prompt, created_at) SELECT u, a, p, %s "
                "FROM unnest(%s::int[], %s::text[], %s::text[]) WITH ORDINALITY AS t(u, a, p, n) "
                "ORDER BY n RETURNING id",
                (EPOCH, owners, names, prompts),
            )
            self._seed_memories()

    def _seed_memories(self) -> None:
        agents, keys, contents, tag_lists = [], [], [], []
        for index, agent_id in enumerate(self.agent_ids):
            for key, content, tags in P.memories_for(index):
                agents.append(agent_id)
                keys.append(key)
                contents.append(content)
                tag_lists.append(tags)
        memory_ids = self._insert(
            "INSERT INTO memories (agent_id, key, content, created_at) SELECT a, k, c, %s "
            "FROM unnest(%s::int[], %s::text[], %s::text[]) WITH ORDINALITY AS t(a, k, c, n) "
            "ORDER BY n RETURNING id",
            (EPOCH, agents, keys, contents),
        )
        if self.tags:
            pairs = [(mid, tag) for mid, tags in zip(memory_ids, tag_lists, strict=True) for tag in tags]
            self.conn.execute(
                "INSERT INTO memory_tags (memory_id, tag) SELECT * FROM unnest(%s::int[], %s::text[])",
                ([m for m, _ in pairs], [t for _, t in pairs]),
            )

    def messages_batch(self, rows: int) -> None:
        """``rows`` messages in fresh conversations (20 messages each), one transaction."""
        lo, hi = self.next_message, self.next_message + rows - 1
        n_conv = (rows + MESSAGES_PER_CONVERSATION - 1) // MESSAGES_PER_CONVERSATION
        c_lo = self.next_conversation
        with self.conn.transaction():
            convs = self._insert(_CONVERSATIONS, {
                "agents": self.agent_ids, "n_agents": len(self.agent_ids), "titles": TITLES,
                "n_titles": len(TITLES), "epoch": EPOCH, "lo": c_lo, "hi": c_lo + n_conv - 1,
            })
            self.conn.execute(_MESSAGES, {"convs": convs, "lo": lo, "hi": hi, "epoch": EPOCH, "phrases": PHRASES})
        self.next_message, self.next_conversation = hi + 1, c_lo + n_conv

    def attachments(self, data_dir: Path, count: int = 5) -> list[Path]:
        """Attach text files to the first ``count`` seeded user messages."""
        rows = self.conn.execute(
            "SELECT id, content FROM messages WHERE role = 'user' AND attachment_path IS NULL "
            "ORDER BY id LIMIT %s",
            (count,),
        ).fetchall()
        written = []
        with self.conn.transaction():
            for message_id, content in rows:
                rel = f"attachments/{message_id}.txt"
                path = data_dir / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(f"Attachment of message {message_id}\n\n{content}\n", encoding="utf-8")
                self.conn.execute("UPDATE messages SET attachment_path = %s WHERE id = %s", (rel, message_id))
                written.append(path)
        return written
