"""A tiny HTTP service for the environment tests: /healthz, or never ready with --broken."""

import argparse
import http.server
import os
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--broken", action="store_true")
a = p.parse_args()
print(f"tiny starting on {a.port} with DATABASE_URL set: {bool(os.environ.get('DATABASE_URL'))}", flush=True)
if a.broken:
    print("fatal: cannot reach the message broker at 10.0.0.1 (simulated)", flush=True)
    time.sleep(3600)
    sys.exit(1)


class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", a.port), H).serve_forever()
