"""The journal (append-only, fsynced, folded into history), fault-injection parsing, notifications."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from upgrade_infra.core import faults
from upgrade_infra.core.errors import BadInput, InjectedFault
from upgrade_infra.core.journal import Journal, fold, history
from upgrade_infra.core.state import StateDir
from upgrade_infra.operations import notify
from upgrade_infra.stack.manifest import Manifest, NotificationSpec


def test_records_fold_into_operations(tmp_path):
    j = Journal(StateDir(tmp_path), "production")
    j.start("op-1", "upgrade", command="upgrade production", from_versions={"a": "1"}, to_versions={"a": "2"},
            data={"rp": "rp-x"})
    j.append("step-begin", "op-1", step="stop_services")
    j.append("step-end", "op-1", step="stop_services", status="ok", duration_s=0.5, result={"n": 1})
    j.append("step-begin", "op-1", step="restore_point")
    j.append("note", "op-1", restore_point="rp-x")
    ops = j.operations()
    assert len(ops) == 1 and not ops[0].finished
    assert [s.status for s in ops[0].steps] == ["ok", "interrupted"]
    assert ops[0].restore_point == "rp-x" and ops[0].data == {"rp": "rp-x"}
    assert j.incomplete().op == "op-1"
    j.append("op-end", "op-1", outcome="rolled-back")
    assert j.incomplete() is None and j.get("op-1").outcome == "rolled-back"
    assert oct(j.path.stat().st_mode & 0o777) == oct(0o600)


def test_a_rehearsal_whose_verdict_failed_is_failed_in_history(tmp_path):
    """Journals written before the fix ended a failed rehearsal with outcome "succeeded", passed false."""
    j = Journal(StateDir(tmp_path), "stg")
    j.start("op-1", "migrate-test", command="migrate test --on stg")
    j.append("op-end", "op-1", outcome="succeeded", error=None, passed=False)
    j.start("op-2", "migrate-test", command="migrate test --on stg")
    j.append("op-end", "op-2", outcome="succeeded", error=None, passed=True)
    assert [o.outcome for o in history(StateDir(tmp_path), "stg")] == ["failed", "succeeded"]


def test_torn_last_line_is_skipped(tmp_path):
    j = Journal(StateDir(tmp_path), "production")
    j.start("op-1", "rollback")
    with open(j.path, "a") as f:
        f.write('{"type": "step-begin", "op": "op-1", "st')  # power loss mid-write
    assert len(j.records()) == 1
    assert j.operations()[0].steps == []


def test_history_across_environments_is_ordered(tmp_path):
    st = StateDir(tmp_path)
    Journal(st, "b").start("op-2", "rollback")
    Journal(st, "a").start("op-1", "upgrade")
    ops = history(st)
    assert [o.op for o in ops] == ["op-2", "op-1"]
    assert [o.op for o in history(st, "a")] == ["op-1"]
    assert history(st, limit=1)[0].op == "op-1"
    assert fold([{"type": "step-begin", "op": "nope", "at": 0, "step": "x"}]) == []


def test_fault_spec_parsing():
    assert faults.parse(None) is None
    assert faults.parse("swap_databases") == ("swap_databases", "exit")
    assert faults.parse("rollback.verify:raise") == ("rollback.verify", "raise")
    with pytest.raises(BadInput):
        faults.parse("x:explode")


def test_raise_mode_fires_only_at_its_step(monkeypatch):
    monkeypatch.setenv(faults.ENV_VAR, "rollback.swap_databases:raise")
    faults.maybe_fail("upgrade", "swap_databases")  # other kind: no fault
    faults.maybe_fail("rollback", "stop_services")
    with pytest.raises(InjectedFault):
        faults.maybe_fail("rollback", "swap_databases")


class _Receiver(BaseHTTPRequestHandler):
    got: list = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["content-length"]))
        _Receiver.got.append((self.path, json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *a):
        pass


@pytest.fixture
def receiver():
    srv = HTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.got = []
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_port}", _Receiver.got
    srv.shutdown()


def _manifest_with(notifs):
    m = Manifest.model_construct(notifications=[NotificationSpec(**n) for n in notifs])
    return m


def test_notifications_json_slack_and_failing_receiver(receiver):
    url, got = receiver
    m = _manifest_with([{"url": url + "/json"}, {"url": url + "/slack", "format": "slack", "events": ["rollback"]},
                        {"url": "http://127.0.0.1:9/dead", "timeout_s": 0.5},
                        {"url": url + "/never", "events": ["upgrade"]}])
    ev = notify.event("rollback.auto", "production", outcome="succeeded", total_s=9.2,
                      from_versions={"assistant": "1.2.0"}, to_versions={"assistant": "1.1.0"})
    out = notify.send(m, ev)
    assert [d["ok"] for d in out] == [True, True, False]  # the dead receiver is recorded, not raised
    paths = {p: b for p, b in got}
    assert paths["/json"]["event"] == "rollback.auto" and paths["/json"]["environment"] == "production"
    assert "production" in paths["/slack"]["text"] and paths["/slack"]["upgrade_infra"]["outcome"] == "succeeded"
    assert "/never" not in paths
