"""A small service that migrates its schema on start, for the rollback and fault-injection tests.

Releases: 1.0 (accounts), 2.0 (adds accounts.currency, rewrites every balance into cents, new
table audit), broken (2.0's migration, then /healthz answers 500: never ready), halfway (commits the
first half of 2.0's migration, then crashes), linger (2.0 that closes like some Node/Python apps: on
SIGTERM its main thread exits while another thread keeps the listening socket open for
LEDGER_LINGER_S seconds, default 0.3). `downgrade --to 1.0` takes schema 2 back to 1; `migrate
--release R` runs R's migration as a one-off job (the service's migrate command). Its data dir holds a
file naming the schema version.
"""

import argparse
import ctypes
import http.server
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import psycopg

TARGET = {"1.0": 1, "2.0": 2, "broken": 2, "halfway": 2, "linger": 2}


def migrate(conn, version: str) -> int:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (v int PRIMARY KEY)")
    current = conn.execute("SELECT coalesce(max(v), 0) FROM schema_version").fetchone()[0]
    target = TARGET[version]
    if current < 1 <= target:
        conn.execute("CREATE TABLE accounts (id serial PRIMARY KEY, name text NOT NULL, balance int NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (1)")
        conn.commit()
    if current < 2 <= target:
        conn.execute("ALTER TABLE accounts ADD COLUMN currency text NOT NULL DEFAULT 'EUR'")
        if version == "halfway":
            conn.commit()
            raise SystemExit("migration 2 failed halfway: simulated crash after its first statement")
        conn.execute("UPDATE accounts SET balance = balance * 100")
        conn.execute("CREATE TABLE audit (id serial PRIMARY KEY, account_id int NOT NULL, note text)")
        conn.execute("INSERT INTO audit (account_id, note) SELECT id, 'migrated to cents' FROM accounts")
        conn.execute("INSERT INTO schema_version VALUES (2)")
        conn.commit()
    return max(current, target)


def serve(a) -> None:
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        schema = migrate(conn, a.release)
    data = Path(os.environ["LEDGER_DATA_DIR"])
    data.mkdir(parents=True, exist_ok=True)
    (data / "state.json").write_text(json.dumps({"release": a.release, "schema": schema}))
    ok = a.release != "broken"

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200 if self.path == "/healthz" and ok else 500 if ok is False else 404)
            self.end_headers()
            self.wfile.write(b"ok" if ok else b"broken")

        def log_message(self, *args):
            pass

    print(f"ledger {a.release} (schema {schema}) on {a.port}", flush=True)
    server = http.server.ThreadingHTTPServer((a.host, a.port), H)
    if a.release == "linger":
        signal.signal(signal.SIGTERM, lambda *_: linger(server))
    server.serve_forever()


def linger(server) -> None:
    """The main thread exits (the process shows as a zombie) while a thread holds the socket."""
    def hold() -> None:
        time.sleep(float(os.environ.get("LEDGER_LINGER_S", "0.3")))
        server.socket.close()
        os._exit(0)

    threading.Thread(target=hold).start()
    ctypes.CDLL(None).pthread_exit(None)


def downgrade(a) -> None:
    """Take the schema from 2 back to ``--to``'s (the inverse of 2.0's migration)."""
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        current = conn.execute("SELECT coalesce(max(v), 0) FROM schema_version").fetchone()[0]
        if current >= 2 > TARGET[a.to]:
            conn.execute("DROP TABLE audit")
            conn.execute("UPDATE accounts SET balance = balance / 100")
            conn.execute("ALTER TABLE accounts DROP COLUMN currency")
            conn.execute("DELETE FROM schema_version WHERE v = 2")
    print(json.dumps({"from": current, "to": TARGET[a.to]}))


def migrate_job(a) -> None:
    """Run ``--release``'s migration and exit (a one-off job, not the server)."""
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        schema = migrate(conn, a.release)
    print(json.dumps({"release": a.release, "schema": schema}))


def seed(a) -> None:
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        conn.execute("INSERT INTO accounts (name, balance) SELECT 'acct ' || g, g %% 997 FROM generate_series(1, %s) g",
                     [a.rows])
    print(json.dumps({"rows": a.rows}))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--release", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--host", default="127.0.0.1", help="0.0.0.0 in a container (published ports)")
    d = sub.add_parser("seed")
    d.add_argument("--rows", type=int, default=2000)
    d.add_argument("--size-mb", default=None)
    g = sub.add_parser("downgrade")
    g.add_argument("--to", required=True)
    m = sub.add_parser("migrate")
    m.add_argument("--release", required=True)
    a = p.parse_args()
    {"serve": serve, "seed": seed, "downgrade": downgrade, "migrate": migrate_job}[a.cmd](a)
    sys.exit(0)
