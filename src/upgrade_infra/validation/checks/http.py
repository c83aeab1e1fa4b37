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

from pydantic import Field

from upgrade_infra.validation.checks.base import (
    CheckContext,
    KindConfig,
    Outcome,
    register_kind,
    template_issues,
)
from upgrade_infra.validation.checks.request import Expect, RequestSpec, build, client, problems, send


class HttpConfig(KindConfig, RequestSpec):
    expect: Expect = Field(default_factory=Expect)


def request_issues(spec, cfg: RequestSpec, m) -> list:
    """A target, and renderable templates in the request fields (shared with the performance kind)."""
    out = [] if (cfg.url or spec.service) else [
        ((), "needs a target: 'service' (+ 'path') or 'url'", "add 'service: <name>' and 'path: /...'")]
    for f in ("path", "url", "headers", "params", "body"):
        out += template_issues((f,), getattr(cfg, f), m)
    return out


@register_kind("http", HttpConfig, semantic=request_issues)
def run_http(spec, cfg: HttpConfig, ctx: CheckContext) -> Outcome:
    with client(cfg.timeout_s) as c:
        sent = send(c, build(cfg, ctx, {}, spec.service, c), spec.service)
    details = {"request": sent.label(), "latency_ms": round(sent.latency_ms, 1),
               "status": sent.response.status_code if sent.response is not None else None}
    if sent.response is None:
        return Outcome.broken(sent.error or "no response", **details)
    bad = problems(sent, cfg.expect)
    if bad:
        return Outcome.fail("; ".join(bad), **details)
    target = sent.request.url.raw_path.decode()
    return Outcome(True, f"{sent.request.method} {target} -> {sent.response.status_code} in {sent.latency_ms:.0f} ms",
                   details)
