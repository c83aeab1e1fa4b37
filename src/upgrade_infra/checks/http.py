"""``kind: http`` - one request to a service; assertions on status, JSON paths, JSON Schema, latency.

    - name: assistant lists agents
      kind: http
      suite: api
      service: assistant
      path: /api/agents?limit=5
      expect:
        status: 200
        json: [{path: "$[0].id", type: integer}]
        max_latency_ms: 500
"""

from __future__ import annotations

import httpx
from pydantic import Field

from .base import CheckContext, KindConfig, Outcome, register_kind
from .request import Expect, RequestSpec, build, problems, send


class HttpConfig(KindConfig, RequestSpec):
    expect: Expect = Field(default_factory=Expect)


def http_issues(spec, cfg: HttpConfig, m) -> list:
    if not (cfg.url or spec.service):
        return [((), "needs a target: 'service' (+ 'path') or 'url'", "add 'service: <name>' and 'path: /...'")]
    return []


@register_kind("http", HttpConfig, semantic=http_issues)
def run_http(spec, cfg: HttpConfig, ctx: CheckContext) -> Outcome:
    with httpx.Client(timeout=cfg.timeout_s) as client:
        sent = send(client, build(cfg, ctx, {}, spec.service, client), spec.service)
    details = {"request": sent.label(), "latency_ms": round(sent.latency_ms, 1),
               "status": sent.response.status_code if sent.response is not None else None}
    if sent.response is None:
        return Outcome.broken(sent.error or "no response", **details)
    bad = problems(sent, cfg.expect)
    if bad:
        return Outcome.fail("; ".join(bad), **details)
    return Outcome(True, f"{sent.label()} -> {sent.response.status_code} in {sent.latency_ms:.0f} ms", details)
