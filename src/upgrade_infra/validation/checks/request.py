"""An HTTP request declared in the manifest and the expectations on its response.

Shared by the ``http``, ``workflow`` and ``performance`` kinds. The target is either
``service`` + ``path`` (the service's URL in the environment under test) or a templated ``url``.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Literal

import httpx
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from upgrade_infra.core.redact import scrub
from upgrade_infra.validation.checks.assertions import JsonAssert, evaluate_all
from upgrade_infra.validation.checks.base import CheckContext

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


class RequestSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    service: str | None = Field(None, description="send to this service of the environment (with path)")
    method: Method = "GET"
    path: str | None = Field(None, description="path on the service, e.g. /api/agents (templated)")
    url: str | None = Field(None, description="full URL instead of service+path (templated)")
    headers: dict[str, str] = {}
    params: dict[str, Any] = {}
    body: Any = Field(None, description="mapping/list: sent as JSON; string: sent as is")

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v

    @field_validator("path")
    @classmethod
    def _slash(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("/", "{")):
            raise ValueError("must start with '/', e.g. /api/agents")
        return v


class Expect(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    status: int | list[int] | None = Field(None, description="expected status code(s); default: any 2xx")
    json_: list[JsonAssert] = Field([], alias="json")
    schema_: dict[str, Any] | None = Field(None, alias="schema", description="JSON Schema the body must match")
    text_contains: list[str] = []
    max_latency_ms: float | None = Field(None, gt=0)

    @field_validator("text_contains", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("schema_")
    @classmethod
    def _schema(cls, v: dict | None) -> dict | None:
        if v is not None:
            try:
                Draft202012Validator.check_schema(v)
            except SchemaError as e:
                raise ValueError(f"invalid JSON Schema: {e.message}") from None
        return v


@lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    return httpx.create_ssl_context()  # building one costs ~50-100 ms: once per process, not per check


def client(timeout: float) -> httpx.Client:
    """An HTTP client for one check (no retries, no redirects followed silently)."""
    return httpx.Client(timeout=timeout, verify=_tls())


def render_value(value: Any, ctx: CheckContext, variables: Mapping[str, Any]) -> Any:
    """Render templates in strings, recursively; a string that is exactly ``{var}`` keeps var's type."""
    if isinstance(value, str):
        key = value[1:-1] if value.startswith("{") and value.endswith("}") and value.count("{") == 1 else None
        if key is not None and key in variables:
            return variables[key]
        return ctx.render(value, variables)
    if isinstance(value, list):
        return [render_value(v, ctx, variables) for v in value]
    if isinstance(value, dict):
        return {k: render_value(v, ctx, variables) for k, v in value.items()}
    return value


def target_url(req: RequestSpec, ctx: CheckContext, variables: Mapping[str, Any], service: str | None) -> str:
    if req.url:
        return ctx.render(req.url, variables)
    svc = req.service or service
    return ctx.service_url(svc) + ctx.render(req.path or "/", variables)


def build(req: RequestSpec, ctx: CheckContext, variables: Mapping[str, Any], service: str | None,
          client: httpx.Client | httpx.AsyncClient) -> httpx.Request:
    url = target_url(req, ctx, variables, service)
    body = render_value(req.body, ctx, variables)
    kw: dict[str, Any] = {"headers": render_value(req.headers, ctx, variables),
                          "params": render_value(req.params, ctx, variables) or None}
    if isinstance(body, dict | list):
        kw["json"] = body
    elif body is not None:
        kw["content"] = str(body)
    return client.build_request(req.method, url, **kw)


class Sent:
    """A request's response (or transport error) and its latency."""

    def __init__(self, request: httpx.Request, response: httpx.Response | None, latency_s: float,
                 error: str | None = None) -> None:
        self.request, self.response, self.latency_s, self.error = request, response, latency_s, error

    @property
    def latency_ms(self) -> float:
        return self.latency_s * 1000

    def label(self) -> str:
        return f"{self.request.method} {self.request.url}"

    def json(self) -> Any:
        return self.response.json() if self.response is not None else None

    def excerpt(self, n: int = 300) -> str:
        return scrub(self.response.text[:n]) if self.response is not None else ""


def send(client: httpx.Client, request: httpx.Request, service: str | None = None) -> Sent:
    t0 = time.perf_counter()
    try:
        resp = client.send(request)
        resp.read()
        return Sent(request, resp, time.perf_counter() - t0)
    except httpx.HTTPError as e:
        who = f"{service} at " if service else ""
        reason = str(e).strip() or type(e).__name__
        return Sent(request, None, time.perf_counter() - t0,
                    f"cannot reach {who}{request.url}: {type(e).__name__}: {reason} (is the service running?)")


def problems(sent: Sent, expect: Expect) -> list[str]:
    """What is wrong with a response, as short sentences (empty: all expectations hold)."""
    if sent.response is None:
        return [sent.error or "no response"]
    r, out = sent.response, []
    want = expect.status
    ok = (200 <= r.status_code < 300) if want is None else r.status_code in (want if isinstance(want, list) else [want])
    if not ok:
        out.append(f"{sent.label()} returned {r.status_code} (expected {want or '2xx'}): {sent.excerpt(200)}")
        return out
    if expect.max_latency_ms is not None and sent.latency_ms > expect.max_latency_ms:
        out.append(f"latency {sent.latency_ms:.0f} ms > max_latency_ms {expect.max_latency_ms:g}")
    for s in expect.text_contains:
        if s not in r.text:
            out.append(f"body does not contain {s!r}")
    if expect.json_ or expect.schema_ is not None:
        try:
            data = r.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return out + [f"body is not JSON: {sent.excerpt(120)}"]
        found = evaluate_all(expect.json_, data)
        if expect.schema_ is not None:
            errs = sorted(Draft202012Validator(expect.schema_).iter_errors(data), key=lambda e: list(e.path))
            found += [f"schema: {'/'.join(map(str, e.path)) or '(root)'}: {e.message[:160]}" for e in errs[:3]]
        if found:
            out += found + [f"response was: {sent.excerpt(240)}"]
    return out
