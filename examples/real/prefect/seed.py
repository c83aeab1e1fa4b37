"""Seed a Prefect server through its REST API: flows, flow runs driven through their states, logs, variables.

Run by `upgrade-infra env up` when production is first created (the `seed` section of stack.yaml).
Every record goes through Prefect's own API and orchestration rules; parameters and log lines carry
synthetic customer names and e-mails, which staging masks. Prints one JSON line with the counts.
"""

from __future__ import annotations

import argparse
import json
import random
from datetime import UTC, datetime

import httpx

FLOWS = ["nightly-etl", "invoice-sync", "crm-import", "report-mailer", "backup-check", "lead-scoring",
         "churn-model", "support-digest"]
FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "John", "Margaret", "Niklaus"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Backus", "Hamilton", "Wirth"]


def ok(r: httpx.Response) -> dict:
    if r.status_code >= 300:
        raise SystemExit(f"{r.request.method} {r.request.url} -> {r.status_code}: {r.text[:300]}")
    return r.json()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--api", required=True, help="base URL of the API, e.g. http://127.0.0.1:4200/api")
    ap.add_argument("--runs", type=float, default=300)
    a = ap.parse_args()
    rnd = random.Random(7)
    runs = int(a.runs)
    counts = {"flows": 0, "flow_runs": 0, "states": 0, "logs": 0, "variables": 0}
    with httpx.Client(base_url=a.api.rstrip("/") + "/", timeout=60) as c:
        flow_ids = []
        for name in FLOWS:
            flow_ids.append(ok(c.post("flows/", json={"name": name, "tags": ["seed"]}))["id"])
            counts["flows"] += 1
        logs = []
        for i in range(runs):
            first, last = rnd.choice(FIRST), rnd.choice(LAST)
            customer = {"name": f"{first} {last}", "email": f"{first}.{last}{i}@example.com".lower()}
            run = ok(c.post("flow_runs/", json={
                "flow_id": flow_ids[i % len(flow_ids)], "name": f"seed-run-{i:04d}",
                "parameters": {"customer": customer, "batch": i}, "tags": ["seed"],
                "state": {"type": "SCHEDULED"}}))
            counts["flow_runs"] += 1
            final = "FAILED" if i % 10 == 9 else "COMPLETED"
            for state in ("PENDING", "RUNNING", final):
                ok(c.post(f"flow_runs/{run['id']}/set_state", json={"state": {"type": state}, "force": True}))
                counts["states"] += 1
            now = datetime.now(UTC).isoformat()
            for level, msg in ((20, f"processing customer {customer['name']} <{customer['email']}>"),
                               (20, f"batch {i} done"), (40 if final == "FAILED" else 20, f"final state {final}")):
                logs.append({"name": "seed", "level": level, "message": msg, "timestamp": now,
                             "flow_run_id": run["id"]})
            if len(logs) >= 300:
                c.post("logs/", json=logs).raise_for_status()
                counts["logs"] += len(logs)
                logs = []
        if logs:
            c.post("logs/", json=logs).raise_for_status()
            counts["logs"] += len(logs)
        for i in range(20):
            ok(c.post("variables/", json={"name": f"seed_setting_{i:02d}", "value": f"value-{i}", "tags": ["seed"]}))
            counts["variables"] += 1
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
