"""Health and readiness probes (HTTP path on the service port, or a command) and waiting for them."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from upgrade_infra.core import runner
from upgrade_infra.stack.manifest import Probe


@dataclass
class ProbeResult:
    ok: bool
    detail: str
    seconds: float


def probe(p: Probe, base_url: str, argv: list[str] | None = None, env: dict | None = None,
          timeout: float = 3.0) -> ProbeResult:
    t0 = time.monotonic()
    if p.http:
        try:
            r = httpx.get(base_url + p.http, timeout=timeout)
            ok = r.status_code == p.expect_status
            detail = f"GET {p.http} -> {r.status_code}"
        except httpx.HTTPError as e:
            ok, detail = False, f"GET {p.http}: {type(e).__name__}"
    else:
        res = runner.run(argv or [], env=env, timeout=timeout * 5, check=False)
        ok, detail = res.returncode == 0, f"command exited {res.returncode}"
    return ProbeResult(ok, detail, time.monotonic() - t0)


def wait_for(check: Callable[[], ProbeResult], timeout: float, interval: float = 0.1,
             abort: Callable[[], str | None] | None = None,
             max_interval: float = 1.0) -> tuple[ProbeResult, float]:
    """Poll ``check`` until ok or ``timeout``, every ``interval`` growing to ``max_interval``; ``abort``
    returning a reason stops early (e.g. process died)."""
    t0 = time.monotonic()
    last = ProbeResult(False, "not probed yet", 0.0)
    while True:
        last = check()
        if last.ok:
            return last, time.monotonic() - t0
        if abort and (reason := abort()):
            return ProbeResult(False, reason, 0.0), time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            return last, time.monotonic() - t0
        time.sleep(interval)
        interval = min(interval * 1.5, max_interval)
