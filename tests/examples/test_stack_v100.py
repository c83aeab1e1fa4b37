"""Release 1.0.0 end to end: both services, the seeder, webhooks, memory recall."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import httpx
import pytest

from pa_apps.testing import Stack

MIB = 1024 * 1024


class Sink:
    """A local 'real webhook' receiving PA_OUTBOUND_URL notifications."""

    def __init__(self):
        self.received = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def wait_execution(automations_url, execution_id, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        execution = httpx.get(f"{automations_url}/api/executions/{execution_id}").json()
        if execution["status"] != "running":
            return execution
        time.sleep(0.05)
    raise AssertionError(f"execution {execution_id} still running")


@pytest.fixture(scope="module")
def v100(pa_cluster, tmp_path_factory):
    stack = Stack(pa_cluster, tmp_path_factory.mktemp("v100"))
    sink = Sink()
    try:
        assistant = stack.serve("assistant", "1.0.0", wait=False, PA_MAIL_ENABLED="true")
        automations = stack.serve("automations", "1.0.0", wait=False,
                                  PA_OUTBOUND_URL=sink.url, PA_MAIL_ENABLED="true")
        ready_s = max(assistant.wait_ready(), automations.wait_ready())
        seeded = stack.seed(2)
        # what the app counts right after the seed (other tests of the module write conversations)
        stats = httpx.get(f"{assistant.url}/api/stats").json()
        yield SimpleNamespace(stack=stack, a=assistant.url, b=automations.url, seeded=seeded,
                              stats_after_seed=stats, sink=sink, ready_s=ready_s)
    finally:
        stack.stop_all()
        sink.stop()


def test_services_start_fast_and_publish_probes(v100):
    assert v100.ready_s < 15
    for url, service in ((v100.a, "assistant"), (v100.b, "automations")):
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{url}/readyz").json()["status"] == "ready"
        version = httpx.get(f"{url}/version").json()
        assert version == {"service": service, "release": "1.0.0", "revision": "r100", "db_revision": "r100"}
    paths = httpx.get(f"{v100.a}/openapi.json").json()["paths"]
    assert "/api/conversations/{conversation_id}/messages" in paths


def test_seed_fills_both_databases(v100):
    report, stack = v100.seeded, v100.stack
    assert 0.9 * 2 * MIB <= report["bytes"] <= 1.6 * 2 * MIB
    rows = report["rows"]
    assert rows["users"] == 300 and rows["workflows"] == 6
    assert rows["messages"] > 0 and rows["executions"] > 0
    assert v100.stats_after_seed == {t: rows[t] for t in ("users", "agents", "memories", "conversations", "messages")}
    files = sorted((stack.data_dir / "attachments").glob("*.txt"))
    assert len(files) == 5
    message_id = files[0].stem
    assert httpx.get(f"{v100.a}/api/messages/{message_id}/attachment").text == files[0].read_text()
    again = stack.seed(2)  # idempotent guard
    assert again["skipped"] is True and again["rows"]["users"] == 300


def test_status_page(v100):
    page = httpx.get(f"{v100.a}/status")
    assert page.status_code == 200
    assert "<title>PA Assistant status</title>" in page.text
    assert "All systems operational" in page.text and "1.0.0" in page.text


def test_memory_recall_and_attachment(v100):
    a = v100.a
    user = httpx.post(f"{a}/api/users", json={"full_name": "Ada Lovelace", "email": "ada@example.com"}).json()
    assert httpx.get(f"{a}/api/users/{user['id']}").json()["full_name"] == "Ada Lovelace"
    agent = httpx.post(f"{a}/api/agents", json={"user_id": user["id"], "name": "Babbage"}).json()
    for key, content in (("Coffee", "oat flat white"), ("gym", "Mondays 7am"), ("cat", "Luna")):
        assert httpx.post(f"{a}/api/agents/{agent['id']}/memory", json={"key": key, "content": content}).status_code == 201
    conversation = httpx.post(f"{a}/api/conversations", json={"agent_id": agent["id"], "title": "t"}).json()
    answer = httpx.post(f"{a}/api/conversations/{conversation['id']}/messages",
                        json={"text": "Order my COFFEE before the Gym", "attachment": "receipt #42"})
    assert answer.status_code == 201
    body = answer.json()
    assert body["memories_used"] == ["Coffee", "gym"]
    assert "oat flat white" in body["reply"] and "Mondays 7am" in body["reply"] and "Luna" not in body["reply"]
    assert (v100.stack.data_dir / body["attachment_path"]).read_text() == "receipt #42"
    messages = httpx.get(f"{a}/api/conversations/{conversation['id']}").json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    outbox = (v100.stack.data_dir / "outbox.log").read_text()
    assert "ada@example.com" in outbox
    assert httpx.post(f"{a}/api/users", json={"full_name": "Ada", "email": "ada@example.com"}).status_code == 409


def test_webhook_workflow_end_to_end(v100):
    a, b = v100.a, v100.b
    agent_id = httpx.get(f"{a}/api/agents?limit=1").json()[0]["id"]
    key = httpx.get(f"{a}/api/agents/{agent_id}/memory").json()[0]["key"]
    workflow = httpx.post(f"{b}/api/workflows", json={
        "name": "e2e", "agent_id": agent_id, "credentials": {"api_key": "sk-test-0123456789"}}).json()
    assert httpx.get(f"{b}/api/workflows/{workflow['id']}").json()["credentials"] == {"api_key": "****6789"}
    accepted = httpx.post(f"{b}/webhook/{workflow['webhook_token']}", json={"text": f"tell me about {key}"})
    assert accepted.status_code == 202
    execution = wait_execution(b, accepted.json()["execution_id"])
    assert execution["status"] == "success", execution
    assert execution["output"]["memories_used"] == [key]
    assert execution["finished_at"] and "duration_ms" not in execution  # 1.0.0 code
    conversation = httpx.get(f"{a}/api/conversations/{execution['output']['conversation_id']}").json()
    assert len(conversation["messages"]) == 2
    deadline = time.monotonic() + 5
    while not any(n["execution_id"] == execution["id"] for n in v100.sink.received):
        assert time.monotonic() < deadline, "no outbound notification"
        time.sleep(0.05)
    assert "finished: success" in (v100.stack.automations_data_dir / "outbox.log").read_text()
    assert httpx.post(f"{b}/webhook/nope", json={"text": "x"}).status_code == 404


def test_seeded_workflows_decrypt_and_run(v100):
    b = v100.b
    workflows = httpx.get(f"{b}/api/workflows").json()
    active = [w for w in workflows if w["active"]]
    detail = httpx.get(f"{b}/api/workflows/{active[0]['id']}").json()
    assert detail["credentials"]["api_key"].startswith("****")
    accepted = httpx.post(f"{b}/webhook/{active[0]['webhook_token']}", json={"text": "ping"})
    assert wait_execution(b, accepted.json()["execution_id"])["status"] == "success"
    inactive = [w for w in workflows if not w["active"]][0]
    assert httpx.post(f"{b}/webhook/{inactive['webhook_token']}", json={"text": "x"}).status_code == 409


def test_wrong_key_and_disabled_triggers(v100):
    """A staging copy with another PA_SECRET_KEY cannot read credentials."""
    other = v100.stack.serve("automations", "1.0.0", PA_SECRET_KEY="not-the-production-key",
                             PA_TRIGGERS_ENABLED="false")
    workflow = httpx.get(f"{other.url}/api/workflows").json()[0]
    broken = httpx.get(f"{other.url}/api/workflows/{workflow['id']}")
    assert broken.status_code == 500 and "cannot decrypt credentials" in broken.json()["detail"]
    disabled = httpx.post(f"{other.url}/webhook/{workflow['webhook_token']}", json={"text": "x"})
    assert disabled.status_code == 503 and disabled.json() == {"detail": "triggers disabled"}
    other.stop()
