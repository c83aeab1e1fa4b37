"""Readiness of n8n: its REST API and webhooks answer, not only /healthz/readiness.

n8n answers /healthz/readiness as soon as its database is migrated, seconds before it has registered
its REST controllers and activated the workflows' webhooks; meanwhile requests time out or get 404
(issue 10, item 7). Used as the service's readiness command until readiness can be any check kind.
Exit 0 when ready.
"""

import sys

import httpx

url = sys.argv[1].rstrip("/")
try:
    ok = (httpx.get(f"{url}/healthz/readiness", timeout=3).status_code == 200
          and httpx.get(f"{url}/rest/settings", timeout=3).status_code == 200
          and httpx.get(f"{url}/healthz", timeout=3).status_code == 200)
except httpx.HTTPError:
    ok = False
sys.exit(0 if ok else 1)
