"""Quarantine that can be merged back (issue 11), on the real reference stack and real PostgreSQL:
a rollback moves production's sequences past the ids written after the restore point, so new
rows never reuse them; ``quarantine show|export|merge`` lists, writes and re-inserts those rows,
reporting the ones that conflict."""

from __future__ import annotations

import csv

from upgrade_infra.cli import main
from upgrade_infra.core import sql
from upgrade_infra.operations import rollback as rb
from upgrade_infra.restore import points as snapshots
from upgrade_infra.restore import quarantine


def _one(env, query, params=None):
    return sql.fetch_value(env.conninfo("assistant"), query, params)


def test_rollback_advances_sequences_and_merge_brings_rows_back(pa_production, tmp_path, capsys):
    s = pa_production
    prod = s.env("production")
    rp = snapshots.create(prod, "clone", label="before writes")["restore_point"]["id"]
    agent = _one(prod, "SELECT min(id) FROM agents")
    # written after the restore point (as during a failed upgrade's watch window): 2 conversations, 3 messages
    convs = [_one(prod, "INSERT INTO conversations (agent_id, title) VALUES (%s, %s) RETURNING id", [agent, t])
             for t in ("kept one", "clashing one")]
    msgs = [_one(prod, "INSERT INTO messages (conversation_id, role, content) VALUES (%s, 'user', %s) RETURNING id",
                 [c, f"written after the restore point {i}"]) for i, c in enumerate([convs[0], convs[0], convs[1]])]
    res = rb.rollback(prod, rp, command="rollback production (test)")
    assert res["verified"]
    op = res["op"]
    # the live sequences moved past the quarantined ids: a new row gets a fresh id
    assert _one(prod, "SELECT count(*) FROM conversations WHERE id = ANY(%s)", [convs]) == 0
    fresh = _one(prod, "INSERT INTO conversations (agent_id, title) VALUES (%s, 'after the rollback') RETURNING id",
                 [agent])
    assert fresh > max(convs), (fresh, convs)
    step = next(t for t in res["steps"] if t["step"] == "advance_sequences")
    assert step["status"] == "ok"
    # a row production wrote meanwhile with a quarantined key: it must not be overwritten
    sql.execute(prod.conninfo("assistant"), "INSERT INTO conversations (id, agent_id, title) VALUES (%s, %s, "
                "'production wrote this')", params=[convs[1], agent])

    shown = quarantine.show(prod)
    assert shown["op"] == op and {t["table"] for t in shown["tables"]} >= {"conversations", "messages"}
    base = ["--stack", str(s.stack), "--state-dir", str(s.state.root)]
    assert main([*base, "quarantine", "show", "production"]) == 0
    assert op in capsys.readouterr().out

    assert main([*base, "quarantine", "export", "production", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    with open(tmp_path / "out" / op / "assistant.messages.csv", newline="") as f:
        exported = list(csv.DictReader(f))
    assert sorted(int(r["id"]) for r in exported) == sorted(msgs)
    assert oct((tmp_path / "out" / op / "assistant.messages.csv").stat().st_mode & 0o777) == "0o600"
    with open(tmp_path / "out" / op / "assistant.conversations.taken.csv", newline="") as f:
        assert [r["title"] for r in csv.DictReader(f)] == ["clashing one"]  # the quarantined version

    dry = quarantine.merge(prod, dry_run=True)
    assert dry["merged_total"] == 0 and {w["table"] for w in dry["would_merge"]} == {"messages", "conversations"}
    assert _one(prod, "SELECT count(*) FROM messages WHERE id = ANY(%s)", [msgs]) == 0  # dry run wrote nothing

    assert main([*base, "--json", "quarantine", "merge", "production"]) == 1  # one row could not be merged
    import json

    out = json.loads(capsys.readouterr().out)
    assert {(m["table"], m["rows"]) for m in out["merged"]} == {("conversations", 1), ("messages", 3)}
    assert [(c["table"], c["keys"], c["reason"]) for c in out["not_merged"]] == [
        ("conversations", [str(convs[1])], "its key is taken in production now")]
    # the rows are back with their own ids, the row production wrote is untouched
    assert _one(prod, "SELECT count(*) FROM messages WHERE id = ANY(%s)", [msgs]) == 3
    assert _one(prod, "SELECT title FROM conversations WHERE id = %s", [convs[0]]) == "kept one"
    assert _one(prod, "SELECT title FROM conversations WHERE id = %s", [convs[1]]) == "production wrote this"
    again = quarantine.merge(prod)  # idempotent: nothing left to insert, the clash is still reported
    assert again["merged_total"] == 0 and [c["keys"] for c in again["not_merged"]] == [[str(convs[1])]]
    assert quarantine.show(prod)["merged"]["rows"] == 0
