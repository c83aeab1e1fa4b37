"""Background execution of webhook-triggered workflows.

Each execution: decrypt the workflow's credentials, open a conversation with
the workflow's agent on the assistant, post the webhook text, store the reply.
Afterwards an optional outbound notification (PA_OUTBOUND_URL) and mail.
"""
from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import text

from pa_apps.automations.workflows import open_credentials
from pa_apps.common.mail import send_mail
from pa_apps.common.sealing import Sealer
from pa_apps.common.service import ServiceContext

log = logging.getLogger("pa_apps.automations.runner")

_LOAD = """
SELECT e.id, e.workflow_id, e.input, w.name, w.agent_id, w.credentials_encrypted
FROM executions e JOIN workflows w ON w.id = e.workflow_id WHERE e.id = :id
"""
_DURATION = ", duration_ms = GREATEST(0, round(extract(epoch FROM now() - started_at) * 1000))::integer"


class AssistantError(RuntimeError):
    pass


class ExecutionRunner:
    def __init__(self, ctx: ServiceContext, sealer: Sealer, workers: int = 4):
        self.ctx = ctx
        self.sealer = sealer
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="execution")
        self.client = httpx.Client(base_url=ctx.settings.assistant_url, timeout=15.0)

    def submit(self, execution_id: int) -> None:
        self.pool.submit(self.run, execution_id)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()

    # -- one execution --------------------------------------------------
    def run(self, execution_id: int) -> str:
        workflow_id = None
        try:
            with self.ctx.engine.connect() as conn:
                job = conn.execute(text(_LOAD), {"id": execution_id}).one()._mapping
            workflow_id = job["workflow_id"]
            output, status = self._call_assistant(job), "success"
        except Exception as exc:  # any failure ends the execution in "error"
            log.warning("execution %s failed: %s", execution_id, exc)
            output, status = {"error": str(exc)}, "error"
        try:
            self._finish(execution_id, status, output)
        except Exception:
            log.exception("could not record the end of execution %s", execution_id)
            return "error"
        self._notify(execution_id, workflow_id, status)
        return status

    def _post(self, path: str, payload: dict, headers: dict) -> dict:
        try:
            response = self.client.post(path, json=payload, headers=headers)
        except httpx.HTTPError as exc:
            raise AssistantError(f"assistant unreachable on POST {path}: {exc}") from None
        if response.status_code >= 400:
            raise AssistantError(
                f"assistant returned {response.status_code} on POST {path}: {response.text[:300]}"
            )
        return response.json()

    def _call_assistant(self, job) -> dict:
        credentials = open_credentials(self.sealer, job["workflow_id"], job["credentials_encrypted"])
        headers = {"Authorization": f"Bearer {credentials['api_key']}"} if "api_key" in credentials else {}
        message = (job["input"] or {}).get("text", "")
        conversation = self._post(
            "/api/conversations",
            {"agent_id": job["agent_id"], "title": f"{job['name']} #{job['id']}"},
            headers,
        )
        answer = self._post(f"/api/conversations/{conversation['id']}/messages", {"text": message}, headers)
        return {
            "conversation_id": conversation["id"],
            "reply": answer["reply"],
            "memories_used": answer["memories_used"],
        }

    def _finish(self, execution_id: int, status: str, output: dict) -> None:
        duration = _DURATION if self.ctx.features.duration_ms else ""
        with self.ctx.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE executions SET status = :status, output = CAST(:output AS jsonb), "
                    f"finished_at = now(){duration} WHERE id = :id"
                ),
                {"status": status, "output": json.dumps(output), "id": execution_id},
            )

    def _notify(self, execution_id: int, workflow_id: int | None, status: str) -> None:
        settings = self.ctx.settings
        send_mail(
            settings,
            f"workflow-{workflow_id}@automations.local",
            f"Execution {execution_id} finished: {status}",
        )
        if not settings.outbound_url:
            return
        payload = {
            "event": "execution.finished",
            "service": self.ctx.spec.name,
            "release": self.ctx.release.version,
            "execution_id": execution_id,
            "workflow_id": workflow_id,
            "status": status,
        }
        try:
            httpx.post(settings.outbound_url, json=payload, timeout=5.0).raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("outbound notification to %s failed: %s", settings.outbound_url, exc)
