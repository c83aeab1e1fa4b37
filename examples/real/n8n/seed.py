"""Seed an n8n instance through its REST API: owner, credentials, webhook workflows, executions.

Run by `upgrade-infra env up` when production is first created (the `seed` section of stack.yaml).
Workflows are created and activated through the running instance (so their webhooks are live at
once), then triggered over HTTP: every execution is a real n8n execution stored by n8n itself.
Webhook payloads carry synthetic customer names and e-mails, which staging masks.
Prints one JSON line with the counts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
import uuid

import httpx

WORKFLOWS = 24
CREDENTIALS = 10
FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "John", "Margaret", "Niklaus"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Backus", "Hamilton", "Wirth"]
HEADERS = {"browser-id": "upgrade-infra-seed"}  # n8n ties its auth cookie to a browser id


def ok(r: httpx.Response) -> dict:
    if r.status_code >= 300:
        raise SystemExit(f"{r.request.method} {r.request.url} -> {r.status_code}: {r.text[:300]}")
    body = r.json() if r.content else {}
    return body.get("data", body) if isinstance(body, dict) else body


def workflow(i: int) -> dict:
    path = f"seed-hook-{i:02d}"
    return {
        "name": f"Seed webhook {i:02d}",
        "active": False,
        "settings": {"executionOrder": "v1", "saveDataSuccessExecution": "all", "saveManualExecutions": True},
        "connections": {"Webhook": {"main": [[{"node": "Greet", "type": "main", "index": 0}]]}},
        "nodes": [
            {"id": str(uuid.uuid4()), "name": "Webhook", "type": "n8n-nodes-base.webhook", "typeVersion": 2,
             "position": [0, 0], "webhookId": str(uuid.uuid4()),
             "parameters": {"httpMethod": "POST", "path": path, "responseMode": "lastNode", "options": {}}},
            {"id": str(uuid.uuid4()), "name": "Greet", "type": "n8n-nodes-base.set", "typeVersion": 3.4,
             "position": [220, 0],
             "parameters": {"assignments": {"assignments": [
                 {"id": str(uuid.uuid4()), "name": "greeting", "type": "string",
                  "value": "={{ 'hello ' + $json.body.name }}"},
                 {"id": str(uuid.uuid4()), "name": "workflow", "type": "number", "value": i}]},
                 "options": {}}},
        ],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--executions", type=float, default=300)
    a = ap.parse_args()
    rnd = random.Random(7)
    password = os.environ["N8N_OWNER_PASSWORD"]
    counts = {"users": 0, "credentials": 0, "workflows": 0, "executions": 0}
    with httpx.Client(base_url=a.url.rstrip("/"), timeout=60, headers=HEADERS) as c:
        # the REST API answers: the service's readiness check (stack.yaml) waited for it
        ok(c.post("/rest/owner/setup", json={"email": "owner@example.com", "firstName": "Olivia",
                                             "lastName": "Okafor", "password": password + "Aa1"}))
        counts["users"] += 1
        for i in range(CREDENTIALS):
            ok(c.post("/rest/credentials", json={"name": f"Seed API key {i:02d}", "type": "httpHeaderAuth",
                                                 "data": {"name": "X-Api-Key", "value": f"secret-{i}-{uuid.uuid4()}"}}))
            counts["credentials"] += 1
        paths = []
        for i in range(WORKFLOWS):
            wf = ok(c.post("/rest/workflows", json=workflow(i)))
            ok(c.patch(f"/rest/workflows/{wf['id']}", json={"active": True, "versionId": wf["versionId"]}))
            paths.append(f"seed-hook-{i:02d}")
            counts["workflows"] += 1
        for i in range(int(a.executions)):
            first, last = rnd.choice(FIRST), rnd.choice(LAST)
            body = {"name": f"{first} {last}", "email": f"{first}.{last}{i}@example.com".lower(), "n": i}
            for attempt in range(40):  # a freshly activated webhook may take a moment to register
                r = c.post(f"/webhook/{paths[i % len(paths)]}", json=body)
                if r.status_code != 404:
                    break
                time.sleep(0.25 * (attempt + 1))
            if ok(r).get("greeting") != f"hello {body['name']}":
                raise SystemExit(f"unexpected webhook answer: {r.text[:300]}")
            counts["executions"] += 1
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
