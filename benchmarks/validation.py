"""Check overhead: requests per second the validation runner drives against a trivial local endpoint.

    python benchmarks/validation.py [--requests 2000] [--json]

The endpoint is a minimal ASGI app under uvicorn in its own process (so the server does not share the
benchmark's GIL). Compared side by side:

* naive: a sequential loop of ``httpx.get`` (a new connection per request, as ad-hoc scripts do);
* naive + keep-alive: a sequential loop on one ``httpx.Client``;
* the performance kind's driver (async httpx, C requests in flight) at several concurrencies;
* whole ``http`` checks per second (config parsing, templating, request, assertions, result).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from benchmarks.support import write_tiny  # noqa: E402
from upgrade_infra.core import runner  # noqa: E402
from upgrade_infra.operations.session import Session  # noqa: E402
from upgrade_infra.stack.ports import free_port  # noqa: E402
from upgrade_infra.validation.checks import CheckContext  # noqa: E402
from upgrade_infra.validation.checks.performance import drive  # noqa: E402
from upgrade_infra.validation.engine import run_check  # noqa: E402

APP = '''
BODY = b'{"ok": true}'

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"12")]})
    await send({"type": "http.response.body", "body": BODY})
'''


def start_server(root: Path) -> tuple[runner.ProcessHandle, str]:
    (root / "trivial.py").write_text(APP)
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "trivial:app", "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning", "--no-access-log"]
    handle = runner.spawn(argv, env=runner.base_env(), cwd=root, log_path=root / "server.log")
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(url + "/", timeout=1)
            return handle, url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"trivial server did not start: {(root / 'server.log').read_text()[-500:]}")


def timed(label: str, n: int, fn) -> dict:
    t0 = time.perf_counter()
    fn()
    s = time.perf_counter() - t0
    return {"approach": label, "requests": n, "seconds": round(s, 3), "rps": round(n / s, 1)}


def naive_get(url: str, n: int) -> None:
    for _ in range(n):
        httpx.get(url).raise_for_status()


def naive_client(url: str, n: int) -> None:
    with httpx.Client() as c:
        for _ in range(n):
            c.get(url).raise_for_status()


def runner_drive(url: str, n: int, c: int) -> None:
    lat, errors, _, samples = drive("GET", url, {}, None, n, c, 0, None, 300)
    assert errors == 0, samples


def checks_per_second(root: Path, url: str, n: int) -> dict:
    port = int(url.rsplit(":", 1)[1])
    check = {"name": "trivial", "kind": "http", "service": "web", "path": "/ok",
             "expect": {"status": 200, "json": [{"path": "$.ok", "equals": True}], "max_latency_ms": 1000}}
    env = Session(write_tiny(root / "stack", [check], base=port - 1), root / "state").env("production")
    spec, ctx = env.manifest.checks[0], CheckContext.for_env(env, root / "report")
    t0 = time.perf_counter()
    for _ in range(n):
        assert run_check(spec, ctx).passed
    s = time.perf_counter() - t0
    return {"approach": "whole http checks, sequential", "requests": n, "seconds": round(s, 3),
            "rps": round(n / s, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="uinfra-bench-val-"))
    os.chmod(root, 0o711)
    handle, base = start_server(root)
    url, n = base + "/ok", a.requests
    try:
        naive_get(url, 20), naive_client(url, 20)  # warm up
        few = min(n, 200)  # ~0.1 s per request: a new client (and TLS context) each time
        rows = [timed("naive: httpx.get loop", few, lambda: naive_get(url, few)),
                timed("naive: httpx.Client loop", n, lambda: naive_client(url, n))]
        for c in (int(x) for x in a.concurrency.split(",")):
            rows.append(timed(f"performance kind, c={c}", n, lambda c=c: runner_drive(url, n, c)))
        rows.append(checks_per_second(root, base, max(50, n // 10)))
    finally:
        runner.stop_process(handle)
        shutil.rmtree(root, ignore_errors=True)
    ref = rows[0]["rps"]
    for r in rows:
        r["x_vs_naive"] = round(r["rps"] / ref, 2)
    if a.json:
        print(json.dumps({"benchmark": "validation", "cpus": os.cpu_count(), "rows": rows}))
        return
    t = Table(title=f"validation runner vs naive loops ({n} requests, trivial endpoint, {os.cpu_count()} CPUs)")
    for col in ("approach", "requests", "seconds", "req/s", "x vs naive"):
        t.add_column(col, justify="left" if col == "approach" else "right")
    for r in rows:
        t.add_row(r["approach"], str(r["requests"]), f"{r['seconds']:.2f}", f"{r['rps']:,.0f}", f"{r['x_vs_naive']:.2f}")
    Console().print(t)


if __name__ == "__main__":
    main()
