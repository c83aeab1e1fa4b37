"""Schema upgrades and downgrades on seeded databases, across releases."""
import time

import httpx
import psycopg

from pa_apps.common.names import join_name, split_full_name


def query(url, sql, params=None):
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def columns(url, table):
    return {r[0] for r in query(url, "SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table,))}


def counts(url, tables):
    return {t: query(url, f"SELECT count(*) FROM {t}")[0][0] for t in tables}


ASSISTANT_TABLES = ["users", "agents", "memories", "conversations", "messages"]


def wait_execution(url, execution_id, timeout=10.0):
    deadline = time.monotonic() + timeout
    while (execution := httpx.get(f"{url}/api/executions/{execution_id}").json())["status"] == "running":
        assert time.monotonic() < deadline, f"execution {execution_id} still running"
        time.sleep(0.05)
    return execution


def test_upgrade_old_code_and_downgrade_lifecycle(stack):
    """1.0.0 seeded -> 1.1.0 (names split, data kept) -> 1.0.0 code on the new schema
    (warns, /api/users breaks) -> downgrade to 1.0.0 (full_name restored exactly)."""
    stack.migrate("1.0.0")
    stack.seed(0.5)
    names = dict(query(stack.assistant_db, "SELECT id, full_name FROM users"))
    before = counts(stack.assistant_db, ASSISTANT_TABLES)
    finished = query(stack.automations_db, "SELECT count(*) FROM executions WHERE finished_at IS NOT NULL")[0][0]

    # -- upgrade: starting 1.1.0 migrates both databases -------------------------------------
    a = stack.serve("assistant", "1.1.0", wait=False)
    b = stack.serve("automations", "1.1.0", wait=False)
    a.wait_ready(), b.wait_ready()
    assert "migrating assistant schema r100 -> r110" in a.log()
    rows = query(stack.assistant_db, "SELECT id, first_name, last_name FROM users")
    assert len(rows) == len(names)
    for user_id, first, last in rows:
        assert (first, last) == split_full_name(names[user_id])
        assert join_name(first, last) == names[user_id]
    assert ("Björk", "") in {(first, last) for _, first, last in rows}
    assert "full_name" not in columns(stack.assistant_db, "users")
    assert counts(stack.assistant_db, ASSISTANT_TABLES) == before
    assert query(stack.automations_db, "SELECT count(duration_ms) FROM executions")[0][0] == finished

    users = httpx.get(f"{a.url}/api/users?limit=1000").json()
    assert {u["id"]: u["full_name"] for u in users} == names
    created = httpx.post(f"{a.url}/api/users", json={"first_name": "Grace", "last_name": "Hopper",
                                                     "email": "grace@example.com"}).json()
    assert created["full_name"] == "Grace Hopper"
    names[created["id"]] = "Grace Hopper"
    memory = httpx.post(f"{a.url}/api/agents/1/memory",
                        json={"key": "ship", "content": "USS Hopper", "tags": ["Navy", "work"]}).json()
    assert memory["tags"] == ["navy", "work"]
    workflow = httpx.get(f"{b.url}/api/workflows").json()[0]
    accepted = httpx.post(f"{b.url}/webhook/{workflow['webhook_token']}", json={"text": "hello"}).json()
    execution = wait_execution(b.url, accepted["execution_id"])
    assert execution["status"] == "success" and execution["duration_ms"] >= 0

    # -- 1.0.0 code against the 1.1.0 schema: starts with a warning, breaks on users ---------
    a.stop()
    old = stack.serve("assistant", "1.0.0")
    assert "schema is newer than release 1.0.0" in old.log()
    ready = httpx.get(f"{old.url}/readyz").json()
    assert ready["status"] == "ready" and ready["schema"] == "ahead"
    broken = httpx.get(f"{old.url}/api/users")
    assert broken.status_code == 500 and "full_name" in broken.json()["error"]
    assert httpx.get(f"{old.url}/api/agents").status_code == 200
    assert stack.cli("assistant", "current").stdout.split() == ["r110", "1.1.0"]

    # -- downgrade recombines the names ------------------------------------------------------
    stack.stop_all()
    stack.both("downgrade", "--release", "1.0.0")
    assert dict(query(stack.assistant_db, "SELECT id, full_name FROM users")) == names
    assert {"first_name", "last_name"}.isdisjoint(columns(stack.assistant_db, "users"))
    assert not columns(stack.assistant_db, "memory_tags")
    assert "duration_ms" not in columns(stack.automations_db, "executions")
    assert query(stack.automations_db, "SELECT version_num FROM alembic_version") == [("r100",)]


def test_release_120_breaks_messages_but_stays_ready(stack):
    a = stack.serve("assistant", "1.2.0", wait=False)
    b = stack.serve("automations", "1.2.0", wait=False)
    a.wait_ready(), b.wait_ready()
    assert httpx.get(f"{a.url}/readyz").status_code == 200
    user = httpx.post(f"{a.url}/api/users", json={"full_name": "Alan Turing", "email": "alan@example.com"}).json()
    agent = httpx.post(f"{a.url}/api/agents", json={"user_id": user["id"], "name": "Bombe"}).json()
    conversation = httpx.post(f"{a.url}/api/conversations", json={"agent_id": agent["id"]}).json()
    posted = httpx.post(f"{a.url}/api/conversations/{conversation['id']}/messages", json={"text": "hi"})
    assert posted.status_code == 500

    workflow = httpx.post(f"{b.url}/api/workflows", json={"name": "w", "agent_id": agent["id"]}).json()
    accepted = httpx.post(f"{b.url}/webhook/{workflow['webhook_token']}", json={"text": "hi"}).json()
    execution = wait_execution(b.url, accepted["execution_id"])
    assert execution["status"] == "error" and "500" in execution["output"]["error"]

    # rollback drill: code back to 1.1.0 after downgrading the schema
    a.stop()
    stack.cli("assistant", "downgrade", "--release", "1.1.0")
    fixed = stack.serve("assistant", "1.1.0")
    again = httpx.post(f"{fixed.url}/api/conversations/{conversation['id']}/messages", json={"text": "hi"})
    assert again.status_code == 201
