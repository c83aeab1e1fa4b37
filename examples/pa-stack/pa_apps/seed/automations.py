"""Seeding the automations database (1.0.0 or 1.1.0+ schema, detected)."""
from __future__ import annotations

import hashlib

import psycopg

from pa_apps.common.sealing import Sealer
from pa_apps.seed.assistant import EPOCH
from pa_apps.seed.sql import PHRASES, has_column, noise, noise_joins, phrase_expr

TABLES = ["workflows", "executions"]
WORKFLOWS = (
    "Morning briefing", "Inbox triage", "Expense reminders",
    "Travel check-in", "Weekly review", "Birthday reminders",
)
SEED_TIMESTAMP = int(EPOCH.timestamp())

_EXECUTIONS = f"""
INSERT INTO executions (workflow_id, status, input, output, started_at, finished_at{{duration_col}})
SELECT workflow_id, status, input, output, started, started + ms * interval '1 millisecond'{{duration_val}}
FROM (
    SELECT (%(workflows)s::int[])[1 + mod(g, %(n_workflows)s)] AS workflow_id,
           CASE WHEN mod(g, 41) = 0 THEN 'error' ELSE 'success' END AS status,
           jsonb_build_object('text', {phrase_expr()} || ' ' || left(c0.chunk, 40 + mod(g, 80))) AS input,
           CASE WHEN mod(g, 41) = 0
                THEN jsonb_build_object('error', 'assistant returned 503 on POST /api/conversations: busy')
                ELSE jsonb_build_object(
                    'reply', left({noise(3)}, 100 + mod(g::bigint * 7919, 1400)::int),
                    'memories_used', '[]'::jsonb,
                    'conversation_id', n + 1)
           END AS output,
           %(epoch)s::timestamptz + n * interval '41 seconds' AS started,
           40 + mod(g * 31, 4000) AS ms
    -- g is offset so executions do not reuse the text of messages with the same number
    FROM generate_series(%(lo)s::int, %(hi)s::int) AS n CROSS JOIN LATERAL (SELECT n + 1000003 AS g) AS offset_g
    {noise_joins(3)}
) AS generated
"""


class AutomationsSeeder:
    def __init__(self, conn: psycopg.Connection):
        self.conn = conn
        self.duration = has_column(conn, "executions", "duration_ms")
        self.workflow_ids: list[int] = []
        self.next_execution = 0
        self._sql = _EXECUTIONS.format(
            duration_col=", duration_ms" if self.duration else "",
            duration_val=", ms" if self.duration else "",
        )

    def seed_workflows(self, sealer: Sealer, agent_ids: list[int]) -> None:
        """One workflow per name, each with sealed credentials; the last one inactive."""
        with self.conn.transaction():
            for i, name in enumerate(WORKFLOWS):
                digest = hashlib.sha256(f"seed-workflow-{i}".encode()).hexdigest()
                credentials = {"api_key": f"sk-seed-{digest[:32]}", "smtp_password": digest[32:48]}
                # Deterministic IV so a given size always seeds identical bytes.
                token = sealer.seal_json(credentials, iv=bytes.fromhex(digest[:32]), timestamp=SEED_TIMESTAMP)
                row = self.conn.execute(
                    "INSERT INTO workflows (name, webhook_token, agent_id, credentials_encrypted, active, created_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                    (name, f"seed-{digest[48:64]}", agent_ids[i % len(agent_ids)], token,
                     i < len(WORKFLOWS) - 1, EPOCH),
                ).fetchone()
                self.workflow_ids.append(row[0])

    def executions_batch(self, rows: int) -> None:
        lo, hi = self.next_execution, self.next_execution + rows - 1
        with self.conn.transaction():
            self.conn.execute(self._sql, {
                "workflows": self.workflow_ids, "n_workflows": len(self.workflow_ids),
                "epoch": EPOCH, "lo": lo, "hi": hi, "phrases": PHRASES,
            })
        self.next_execution = hi + 1
