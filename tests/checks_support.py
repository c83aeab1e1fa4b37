"""Test support for check kinds: a tiny stack whose one service is a stdlib HTTP server in a thread.

``tiny_env(tmp, checks)`` writes a one-service manifest (service ``web`` on port_base+1, never started
by upgrade-infra: the test server answers there instead) and returns the production Environment.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from benchmarks.support import tiny_manifest, write_tiny  # noqa: F401  (shared with the validation benchmark)
from upgrade_infra.operations.session import Session

from .conftest import free_base


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid 40 ms delayed-ACK stalls
    jobs: dict[int, int] = {}

    def log_message(self, *a) -> None:  # quiet
        pass

    def _send(self, code: int, body, ctype: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        u = urlparse(self.path)
        q = parse_qs(u.query)
        if u.path == "/healthz":
            return self._send(200, {"ok": True})
        if u.path == "/items":
            return self._send(200, [{"id": 1, "name": "one"}, {"id": 2, "name": "two"}])
        if u.path == "/slow":
            time.sleep(float(q.get("ms", ["200"])[0]) / 1000)
            return self._send(200, {"slept": True})
        if u.path.startswith("/code/"):
            return self._send(int(u.path.rsplit("/", 1)[1]), {"detail": "as requested"})
        if u.path == "/page":
            return self._send(200, "<html><body><h1 id='t'>Hello page</h1><p>All good</p></body></html>",
                              "text/html")
        if u.path.startswith("/jobs/"):
            jid = int(u.path.rsplit("/", 1)[1])
            polls = Handler.jobs.get(jid)
            if polls is None:
                return self._send(404, {"detail": "no such job"})
            Handler.jobs[jid] = polls + 1
            done = polls >= 2
            return self._send(200, {"id": jid, "status": "done" if done else "running",
                                    "output": {"answer": 42} if done else None})
        return self._send(404, {"detail": "not found"})

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(n) or b"null")
        if self.path == "/echo":
            return self._send(201, {"got": body, "auth": self.headers.get("Authorization")})
        if self.path == "/jobs":
            jid = len(Handler.jobs) + 1000
            Handler.jobs[jid] = 0
            return self._send(202, {"job_id": jid, "input": body})
        return self._send(404, {"detail": "not found"})


class TinyServer:
    def __init__(self, port: int) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.httpd.server_address[1]
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def tiny_session(tmp: Path, checks: list[dict], **kw) -> Session:
    return Session(write_tiny(tmp / "stack", checks, base=free_base(50), **kw), tmp / "state")


# -- fixtures (import them into a test module: ``from checks_support import make_env, tiny_server``) ----
@pytest.fixture(scope="module")
def tiny_server():
    srv = TinyServer(0)  # any free port; the tiny stack's port_base is set so that web = that port
    srv.base = srv.port - 1
    yield srv
    srv.close()


@pytest.fixture
def make_env(tiny_server, private_tmp):
    """make_env(checks) -> the production Environment of a tiny stack whose ``web`` is the test server."""
    counter = iter(range(1000))

    def make(checks: list[dict], **kw):
        d = private_tmp / f"s{next(counter)}"
        s = Session(write_tiny(d / "stack", checks, base=tiny_server.base, **kw), d / "state")
        return s.env("production")

    return make


def run_checks(env, report_dir: Path | None = None) -> dict:
    """Run every declared check of ``env`` (no health probes) -> {name: CheckResult}."""
    from upgrade_infra.validation.checks import CheckContext
    from upgrade_infra.validation.engine import run_check

    ctx = CheckContext.for_env(env, report_dir or env.state.root / "report")
    return {c.name: run_check(c, ctx) for c in env.manifest.checks}
