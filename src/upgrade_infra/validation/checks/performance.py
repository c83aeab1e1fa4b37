"""``kind: performance`` - N requests at concurrency C; p50/p95/p99, throughput, error rate.

    - name: agents list under load
      kind: performance
      suite: performance
      service: assistant
      path: /api/agents?limit=20
      requests: 300
      concurrency: 8
      limits: {p95_ms: 250, max_error_rate: 0.0}     # absolute
      baseline: {p95_ratio: 1.2}                      # p95 at most 1.2 x the baseline's p95

Relative limits compare with the run's baseline (``validate --baseline ENV|FILE``, or the
environment's own recorded one); without a baseline they are reported as not checked.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
from urllib.parse import urlencode

import urllib3
from pydantic import BaseModel, ConfigDict, Field

from upgrade_infra.validation.checks.base import CheckContext, KindConfig, Outcome, register_kind
from upgrade_infra.validation.checks.http import request_issues
from upgrade_infra.validation.checks.request import RequestSpec, render_value, target_url


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")
    p50_ms: float | None = Field(None, gt=0)
    p95_ms: float | None = Field(None, gt=0)
    p99_ms: float | None = Field(None, gt=0)
    min_rps: float | None = Field(None, gt=0)
    max_error_rate: float = Field(0.0, ge=0, le=1, description="fraction of failed requests allowed")


class Relative(BaseModel):
    model_config = ConfigDict(extra="forbid")
    p50_ratio: float | None = Field(None, gt=0, description="p50 <= ratio x baseline p50")
    p95_ratio: float | None = Field(None, gt=0)
    p99_ratio: float | None = Field(None, gt=0)
    min_rps_ratio: float | None = Field(None, gt=0, description="throughput >= ratio x baseline throughput")
    slack_ms: float = Field(0, ge=0, description="noise floor: a percentile may also exceed ratio x baseline "
                            "by this many ms (shared machines)")


class PerformanceConfig(KindConfig, RequestSpec):
    timeout_s: float = Field(60, gt=0, le=3600)
    requests: int = Field(200, ge=1, le=1_000_000)
    concurrency: int = Field(8, ge=1, le=512)
    warmup: int = Field(5, ge=0, description="requests sent first and not measured")
    expect_status: int | list[int] | None = Field(None, description="statuses that count as success (default 2xx)")
    limits: Limits = Field(default_factory=Limits)
    baseline: Relative = Field(default_factory=Relative)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an ascending list."""
    if not sorted_values:
        return float("nan")
    k = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(k, len(sorted_values)) - 1]


def summarize(latencies_s: list[float], errors: int, wall_s: float, concurrency: int) -> dict[str, float]:
    ms = sorted(x * 1000 for x in latencies_s)
    n = len(ms) + errors
    return {"requests": n, "concurrency": concurrency, "ok": len(ms), "errors": errors,
            "error_rate": round(errors / n, 4) if n else 1.0,
            "p50_ms": round(percentile(ms, 50), 2), "p95_ms": round(percentile(ms, 95), 2),
            "p99_ms": round(percentile(ms, 99), 2), "max_ms": round(ms[-1], 2) if ms else float("nan"),
            "mean_ms": round(sum(ms) / len(ms), 2) if ms else float("nan"),
            "rps": round(n / wall_s, 1) if wall_s > 0 else 0.0, "wall_s": round(wall_s, 3)}


def judge(m: dict[str, float], limits: Limits, rel: Relative, base: dict[str, float] | None) -> tuple[list, list]:
    """(problems, notes) of a run's metrics against absolute and baseline-relative limits."""
    bad, notes = [], []
    if m["error_rate"] > limits.max_error_rate:
        bad.append(f"error rate {m['error_rate']:.1%} > {limits.max_error_rate:.1%} ({m['errors']} of {m['requests']})")
    for q in ("p50", "p95", "p99"):
        lim = getattr(limits, f"{q}_ms")
        if lim is not None and not m[f"{q}_ms"] <= lim:
            bad.append(f"{q} {m[f'{q}_ms']:.1f} ms > limit {lim:g} ms")
    if limits.min_rps is not None and m["rps"] < limits.min_rps:
        bad.append(f"throughput {m['rps']:.0f} req/s < limit {limits.min_rps:g}")
    wanted = {k: v for k, v in rel.model_dump(exclude={"slack_ms"}).items() if v is not None}
    if wanted and not base:
        notes.append("no baseline for this check: relative limits not checked")
        return bad, notes
    for q in ("p50", "p95", "p99"):
        ratio = wanted.get(f"{q}_ratio")
        ref = (base or {}).get(f"{q}_ms")
        if ratio is not None and ref:
            got, slack = m[f"{q}_ms"], f" + {rel.slack_ms:g} ms" if rel.slack_ms else ""
            (bad if not got <= ratio * ref + rel.slack_ms else notes).append(
                f"{q} {got:.1f} ms vs baseline {ref:.1f} ms (x{got / ref:.2f}, allowed x{ratio:g}{slack})")
    if "min_rps_ratio" in wanted and (ref := (base or {}).get("rps")):
        got, ratio = m["rps"], wanted["min_rps_ratio"]
        (bad if got < ratio * ref else notes).append(
            f"throughput {got:.0f} req/s vs baseline {ref:.0f} (x{got / ref:.2f}, minimum x{ratio:g})")
    return bad, notes


def _accepted(status: int, want: int | list[int] | None) -> bool:
    if want is None:
        return 200 <= status < 300
    return status in (want if isinstance(want, list) else [want])


def drive(method: str, url: str, headers: dict[str, str], body: bytes | None, n: int, concurrency: int,
          warmup: int, want: int | list[int] | None, timeout_s: float) -> tuple[list[float], int, float, list[str]]:
    """Send ``n`` requests from ``concurrency`` threads sharing a keep-alive pool.

    Returns (latencies of successes in s, errors, wall s, a few error samples); raises TimeoutError
    when ``timeout_s`` passes first. urllib3 is used here because its per-request cost is several
    times lower than httpx's, so the client disturbs the measurement less on small machines.
    """
    pool = urllib3.PoolManager(maxsize=concurrency, retries=False, timeout=urllib3.Timeout(total=min(timeout_s, 30)))
    latencies: list[float] = []
    samples: list[str] = []
    errors = itertools.count()
    counter = itertools.count()

    def one() -> None:
        t0 = time.perf_counter()
        try:
            r = pool.request(method, url, body=body, headers=headers)
            ok, why = _accepted(r.status, want), f"status {r.status}"
        except urllib3.exceptions.HTTPError as e:
            ok, why = False, f"{type(e).__name__}: {e}"
        if ok:
            latencies.append(time.perf_counter() - t0)
        else:
            next(errors)
            if len(samples) < 3:
                samples.append(why[:200])

    for _ in range(warmup):
        try:
            pool.request(method, url, body=body, headers=headers)
        except urllib3.exceptions.HTTPError:
            pass
    deadline = time.monotonic() + timeout_s

    def worker() -> None:
        while next(counter) < n and time.monotonic() < deadline:
            one()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + 5)
    wall = time.perf_counter() - t0
    pool.clear()
    n_errors = next(errors)
    if len(latencies) + n_errors < n:
        raise TimeoutError(f"{len(latencies) + n_errors} of {n} requests done")
    return latencies, n_errors, wall, samples


def request_parts(cfg: PerformanceConfig, ctx: CheckContext, service: str | None) -> tuple[str, dict, bytes | None]:
    """URL (with query), headers and body bytes of the request, rendered once."""
    url = target_url(cfg, ctx, {}, service)
    params = render_value(cfg.params, ctx, {})
    if params:
        url += ("&" if "?" in url else "?") + urlencode(params, doseq=True)
    headers = dict(render_value(cfg.headers, ctx, {}))
    body = render_value(cfg.body, ctx, {})
    if isinstance(body, dict | list):
        headers.setdefault("Content-Type", "application/json")
        return url, headers, json.dumps(body).encode()
    return url, headers, None if body is None else str(body).encode()


@register_kind("performance", PerformanceConfig, exclusive=True, semantic=request_issues)
def run_performance(spec, cfg: PerformanceConfig, ctx: CheckContext) -> Outcome:
    url, headers, body = request_parts(cfg, ctx, spec.service)
    try:
        lat, errors, wall, samples = drive(cfg.method, url, headers, body, cfg.requests, cfg.concurrency,
                                           cfg.warmup, cfg.expect_status, cfg.timeout_s)
    except TimeoutError as e:
        return Outcome.fail(f"{cfg.requests} requests to {url} did not finish within timeout_s "
                            f"{cfg.timeout_s:g} ({e})")
    metrics = summarize(lat, errors, wall, cfg.concurrency)
    base = ctx.baseline.metrics(spec.name) if ctx.baseline else None
    bad, notes = judge(metrics, cfg.limits, cfg.baseline, base)
    details = {"request": f"{cfg.method} {url}", "metrics": metrics, "error_samples": samples,
               "baseline": {"label": ctx.baseline.label if ctx.baseline else None, "metrics": base},
               "cdf_ms": [round(percentile(sorted(x * 1000 for x in lat), q), 2) for q in range(0, 101, 5)]}
    if metrics["ok"] == 0:
        return Outcome.broken(f"all {metrics['requests']} requests to {url} failed: {'; '.join(samples)}", **details)
    head = (f"{metrics['requests']} req at c={cfg.concurrency}: p50 {metrics['p50_ms']:.1f} / p95 "
            f"{metrics['p95_ms']:.1f} / p99 {metrics['p99_ms']:.1f} ms, {metrics['rps']:.0f} req/s, "
            f"errors {metrics['error_rate']:.1%}")
    if bad:
        return Outcome.fail(f"{head}: " + "; ".join(bad + [s for s in samples[:1]]), **details)
    return Outcome(True, head + ("; " + "; ".join(notes) if notes else ""), details)
