"""Guarded upgrades of the reference stack: 1.1.0 goes through; 1.2.0 fails its smoke checks
(posting a message returns 500) and rolls itself back, reporting the rows written meanwhile; a
manual rollback returns to 1.0.0; notifications reach a local receiver (a dead one never blocks);
a concurrent command is refused with the holder's pid and command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from upgrade_infra.core import sql
from upgrade_infra.core.journal import history
from upgrade_infra.operations import rollback, upgrade
from upgrade_infra.operations.session import Session
from upgrade_infra.restore.fingerprint import fingerprint

from ..conftest import stop_all, write_stack

SMOKE_WRITES = ("conversations", "messages")  # the smoke workflow posts a message


class Receiver(BaseHTTPRequestHandler):
    events: list = []

    def do_POST(self):  # noqa: N802
        Receiver.events.append((self.path, json.loads(self.rfile.read(int(self.headers["content-length"])))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *a):
        pass


@pytest.fixture(scope="module")
def pa():
    srv = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_port}"

    def edit(d):
        d["policies"]["watch_window_s"] = 1
        d["notifications"] = [{"url": url + "/json"}, {"url": url + "/slack", "format": "slack"},
                              {"url": "http://127.0.0.1:9/nobody", "timeout_s": 1}]

    root = Path(tempfile.mkdtemp(prefix="uinfra-upg-"))
    os.chmod(root, 0o711)
    s = Session(write_stack(root / "stack", edit=edit), root / "state")
    env = s.env("production")
    env.up(seed_mb=float(os.environ.get("UPGRADE_INFRA_TEST_SEED_MB", "3")))
    yield s, fingerprint(env, skip_tables=SMOKE_WRITES)
    stop_all(s)
    srv.shutdown()
    shutil.rmtree(root, ignore_errors=True)


def test_upgrade_110_then_broken_120_rolls_itself_back_then_manual_rollback_to_100(pa):
    """One scenario, in this order (each phase starts where the previous one left production): the
    guarded upgrade to 1.1.0 succeeds, the one to the broken 1.2.0 rolls itself back, and a manual
    rollback returns to 1.0.0 with the data exactly as before."""
    _upgrade_to_110_succeeds(pa)
    _upgrade_to_120_rolls_itself_back(pa)
    _manual_rollback_returns_to_100(pa)


def _upgrade_to_110_succeeds(pa) -> None:
    s, _ = pa
    env = s.env("production")
    res = upgrade.upgrade(env, {"assistant": "1.1.0", "automations": "1.1.0"})
    assert res["outcome"] == "succeeded", res.get("error")
    assert [t["step"] for t in res["steps"]][-2:] == ["smoke", "watch"]
    assert env.record.versions == {"assistant": "1.1.0", "automations": "1.1.0"}
    cols = {r["column_name"] for r in sql.fetch(env.conninfo("assistant"), "SELECT column_name FROM "
                                               "information_schema.columns WHERE table_name = 'users'")}
    assert {"first_name", "last_name"} <= cols
    assert any(p == "/json" and e["event"] == "upgrade" for p, e in Receiver.events)


def _upgrade_to_120_rolls_itself_back(pa) -> None:
    s, _ = pa
    env = s.env("production")
    Receiver.events.clear()
    res = upgrade.upgrade(env, {"assistant": "1.2.0", "automations": "1.2.0"})
    assert res["outcome"] == "rolled-back" and res["failed_step"] == "smoke"
    assert "500" in res["error"]
    rb = res["rollback"]
    assert rb["verified"] and rb["auto"] and rb["staging_path"] == "spare"
    assert env.record.versions == {"assistant": "1.1.0", "automations": "1.1.0"}
    conv = next(t for t in rb["quarantine"]["tables"] if t["table"] == "conversations")
    assert conv["rows_new"] == 0  # the failing smoke check removed the conversation it opened (its cleanup)
    assert "advance_sequences" in [t["step"] for t in rb["steps"]]
    qdb = rb["quarantine"]["where"]["assistant"]
    assert sql.exists(env.conninfo(), sql.DATABASE_EXISTS, qdb)  # kept, not dropped
    names = {e["event"] for p, e in Receiver.events if p == "/json"}
    assert {"upgrade.failed", "rollback.auto"} <= names
    assert any(p == "/slack" and "production" in e["text"] for p, e in Receiver.events)


def _manual_rollback_returns_to_100(pa) -> None:
    s, before = pa
    env = s.env("production")
    res = rollback.rollback(env)
    assert res["verified"] and res["versions"] == {"assistant": "1.0.0", "automations": "1.0.0"}
    assert res["database_step_s"] < 5 and res["total_s"] < res["budget_s"]
    after = fingerprint(env, skip_tables=SMOKE_WRITES)
    assert after.equal(before), [str(d) for d in after.diff(before)]
    outcomes = [(o.kind, o.outcome) for o in history(s.state, "production")]
    assert outcomes[-4:] == [("upgrade", "succeeded"), ("upgrade", "rolled-back"), ("rollback", "succeeded"),
                             ("rollback", "succeeded")]

HOLD = """
import sys, time
from upgrade_infra.core.lock import env_lock
from upgrade_infra.core.state import StateDir
with env_lock(StateDir(sys.argv[1]), "production", "upgrade-infra upgrade production --to assistant=1.1.0"):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_concurrent_mutation_is_refused_with_holder(pa):
    s, _ = pa
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(s.state.root)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        r = subprocess.run([sys.executable, "-m", "upgrade_infra", "--stack", str(s.stack), "--state-dir",
                            str(s.state.root), "rollback", "production"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 3
        assert f"pid {holder.pid}" in r.stderr and "upgrade production --to assistant=1.1.0" in r.stderr
    finally:
        holder.kill()
        holder.wait()
