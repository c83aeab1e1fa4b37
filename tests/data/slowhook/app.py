"""A service whose health endpoint answers at once while its real endpoint (/hook) answers 503 for
its first --warmup seconds (like an app that registers its webhooks after its readiness endpoint is up)."""

import argparse
import http.server
import time

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--warmup", type=float, default=1.5)
a = p.parse_args()
started = time.monotonic()


class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        if self.path == "/healthz":
            code = 200
        elif self.path == "/hook":
            code = 200 if time.monotonic() - started >= a.warmup else 503
        else:
            code = 404
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b"ok" if code == 200 else b"not yet")

    def log_message(self, *args):
        pass


print(f"slowhook on {a.port}", flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", a.port), H).serve_forever()
