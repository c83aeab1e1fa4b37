"""Staging on the real reference stack: create (production stays online), parity, masking without leaks,
isolation from production's database, reset, sync, physical copy from staging, gc, metrics, bad input.

Tests run in file order and share one production and one staging env (``stage-t``) to stay fast.
"""

from __future__ import annotations

import json
import re
import threading
import time

import httpx
import pytest

from upgrade_infra.backends import open_environment
from upgrade_infra.cli import main
from upgrade_infra.core import sql
from upgrade_infra.core.errors import BadInput, ManifestError, PostgresError, RefusedToTouchProduction
from upgrade_infra.observe import metrics
from upgrade_infra.staging import info as staging_info
from upgrade_infra.staging import isolation
from upgrade_infra.staging import lifecycle as staging

NAME = "stage-t"
TABLES = {"assistant": ["users", "agents", "memories", "conversations", "messages"],
          "automations": ["workflows", "executions"]}


def _counts(env) -> dict[str, int]:
    return {f"{db}.{t}": sql.fetch_value(env.conninfo(db), f'SELECT count(*) FROM "{t}"', read_only=True)
            for db, tables in TABLES.items() for t in tables}


def _values(env, db: str, query: str) -> set:
    return {next(iter(r.values())) for r in sql.fetch(env.conninfo(db), query, read_only=True)}


@pytest.fixture(scope="module")
def created(pa_production):
    """Create ``stage-t`` while a thread keeps calling production's health endpoint."""
    s = pa_production
    prod = s.env("production")
    url = prod.service_url("assistant") + "/healthz"
    probes: list[tuple[float, int]] = []
    phases: dict[str, float] = {}
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                probes.append((time.monotonic(), httpx.get(url, timeout=2).status_code))
            except httpx.HTTPError:
                probes.append((time.monotonic(), 0))
            time.sleep(0.05)

    def progress(phase: str, done: int, total: int | None) -> None:
        phases.setdefault(phase, time.monotonic())
        phases[phase + ":end"] = time.monotonic()

    t = threading.Thread(target=poll, daemon=True)
    t.start()
    try:
        result = staging.create(s, NAME, progress=progress)
    finally:
        stop.set()
        t.join()
    return s, result, probes, phases


def test_create_keeps_production_online(created):
    s, r, probes, phases = created
    assert r["strategy"] == "dump" and r["status"] == "ready"
    t0, t1 = phases["dump assistant"], phases["restore automations:end"]
    during = [code for at, code in probes if t0 <= at <= t1]
    assert len(during) >= 3 and set(during) == {200}, during  # production answered all along the sync


def test_staging_is_healthy_with_production_data(created):
    s, r, _, _ = created
    st = s.env(NAME)
    assert st.status().healthy and st.kind == "staging" and st.record.source == "production"
    assert _counts(st) == _counts(s.env("production"))  # data parity, table by table
    row = staging_info.list_envs(s)[0]
    assert row["name"] == NAME and row["healthy"] and row["ttl_left"].endswith("h") and row["restore_point"]


def test_masked_values_do_not_leak(created):
    s, r, _, _ = created
    prod, st = s.env("production"), s.env(NAME)
    assert r["leak_check"]["ok"] and {c["column"] for c in r["leak_check"]["columns"]} == {
        "assistant.users.full_name", "assistant.users.email", "assistant.memories.content",
        "assistant.agents.system_prompt", "automations.workflows.webhook_token"}
    for query in ("SELECT email FROM users", "SELECT full_name FROM users", "SELECT content FROM memories",
                  "SELECT system_prompt FROM agents"):
        real, masked = _values(prod, "assistant", query), _values(st, "assistant", query)
        assert len(masked) > 1 and not real & masked, query
    assert all(e.endswith("@example.invalid") for e in _values(st, "assistant", "SELECT email FROM users"))
    # kept columns and joins are intact: the same users own the same agents
    q = "SELECT u.id, count(a.id) AS n FROM users u JOIN agents a ON a.user_id = u.id GROUP BY u.id ORDER BY u.id"
    assert sql.fetch(st.conninfo("assistant"), q) == sql.fetch(prod.conninfo("assistant"), q, read_only=True)

    tokens = "SELECT webhook_token FROM workflows"
    assert not _values(prod, "automations", tokens) & _values(st, "automations", tokens)


def test_leak_scan_covers_every_text_column_and_names_a_planted_value(created):
    """Issue 11 item 6 on the reference stack: the scan reads every text/JSON table of both databases;
    a production first name put back into one prompt (what the rules before the fix left in all of
    them) fails it, naming the table and column."""
    from upgrade_infra.staging import masking

    s, r, _, _ = created
    prod, st = s.env("production"), s.env(NAME)
    sc = r["leak_check"]["scan"]
    assert sc["ok"] and sc["tables"] >= 8 and sc["needles"] > 100, sc
    meta = staging_info.load_meta(st)
    plan = masking.plan(s.manifest, st.conninfo)
    q = "SELECT id, system_prompt FROM agents ORDER BY id LIMIT 1"
    [(agent, masked)] = [tuple(x.values()) for x in sql.fetch(st.conninfo("assistant"), q)]
    original = sql.fetch_value(prod.conninfo("assistant"), "SELECT system_prompt FROM agents WHERE id = %s",
                               [agent], read_only=True)
    sql.execute(st.conninfo("assistant"), "UPDATE agents SET system_prompt = %s WHERE id = %s",
                params=[original, agent])
    try:
        report = masking.leak_check(plan, prod.conninfo, st.conninfo, databases=["assistant", "automations"])
        plan.apply = [x for x in plan.apply if x.column != "system_prompt"]  # as if it were not masked
        unmasked = masking.leak_check(plan, prod.conninfo, st.conninfo, databases=["assistant", "automations"])
    finally:
        sql.execute(st.conninfo("assistant"), "UPDATE agents SET system_prompt = %s WHERE id = %s",
                    params=[masked, agent])
    assert not report["ok"] and meta["leak_check"]["ok"]
    assert [c["column"] for c in report["columns"] if not c["ok"]] == ["assistant.agents.system_prompt"]
    assert not unmasked["ok"] and all(c["ok"] for c in unmasked["columns"])  # the old check saw nothing
    assert [(h["table"], h["column"]) for h in unmasked["scan"]["hits"]] == [("agents", "system_prompt")]


def test_staging_cannot_reach_production_database(created):
    s, _, _, _ = created
    prod, st = s.env("production"), s.env(NAME)
    creds = st.db_info()["assistant"]
    assert creds["port"] != prod.ports["postgres"]
    aimed = creds["url"].replace(f":{creds['port']}/", f":{prod.ports['postgres']}/")
    with pytest.raises(PostgresError, match="password authentication failed"):
        with sql.connect(aimed):
            pass  # staging's own role password is not production's
    with sql.connect(prod.conninfo("assistant"), read_only=True) as c:  # how staging code reads a source
        with pytest.raises(Exception, match="read-only transaction"):
            c.execute("UPDATE users SET email = email")
    moved = open_environment(s.manifest, s.state, NAME,
                             st.record.model_copy(update={"backend_state": {"port_base": prod.port_base}}))
    with pytest.raises(RefusedToTouchProduction):
        isolation.check(moved, [prod])


def test_reset_returns_to_the_synced_state(created):
    s, _, _, _ = created
    st = s.env(NAME)
    ids = sorted(_values(st, "assistant", "SELECT id FROM messages ORDER BY id LIMIT 10"))
    sql.execute(st.conninfo("assistant"), "DELETE FROM messages WHERE id = ANY(%s)", params=[ids])
    r = staging.reset(s, NAME)
    back = _values(s.env(NAME), "assistant", f"SELECT id FROM messages WHERE id IN ({','.join(map(str, ids))})")
    assert sorted(back) == ids and s.env(NAME).status().healthy  # (the smoke checks of reset add rows of their own)
    assert {x["step"] for x in r["steps"]} >= {"swap_databases", "start_services", "verify"}


def test_sync_refreshes_from_production(created):
    s, _, _, _ = created
    prod = s.env("production")
    sql.execute(prod.conninfo("assistant"), "INSERT INTO users (full_name, email) VALUES "
                "('Sync Probe', 'sync.probe@corp.example')")
    r = staging.sync_env(s, NAME)
    assert r["synced"] == NAME and r["leak_check"]["ok"]
    st = s.env(NAME)
    assert _counts(st)["assistant.users"] == _counts(prod)["assistant.users"]
    assert "sync.probe@corp.example" not in _values(st, "assistant", "SELECT email FROM users")


def test_metrics_cover_environments_and_staging(created):
    s, _, _, _ = created
    out = metrics.text(s)
    assert re.search(r'^upgrade_infra_environment_up\{env="stage-t",kind="staging"\} 1$', out, re.M)
    assert re.search(r"^upgrade_infra_staging_environments 1$", out, re.M)
    assert re.search(r'^upgrade_infra_staging_last_sync_age_seconds\{env="stage-t",source="production"\} [\d.]+$',
                     out, re.M)
    assert re.search(r'^upgrade_infra_restore_points_bytes\{env="stage-t"\} [1-9]\d*$', out, re.M)
    for line in out.splitlines():  # the exposition format: comments, or name{labels} value
        assert line.startswith("# ") or re.fullmatch(r'[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[\d.e+-]+',
                                                      line), line


def test_cli_list_watch_and_metrics(created, capsys):
    s, _, _, _ = created
    base = ["--stack", str(s.stack), "--state-dir", str(s.state.root)]
    assert main([*base, "--json", "status", "--watch", "--interval", "0.2", "--count", "2"]) == 0
    rounds = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["round"] for r in rounds] == [1, 2] and all(r["healthy"] for r in rounds)
    assert main([*base, "--json", "stage", "list"]) == 0
    assert [r["name"] for r in json.loads(capsys.readouterr().out)] == [NAME]
    assert main([*base, "metrics"]) == 0
    assert "upgrade_infra_staging_environments 1" in capsys.readouterr().out


def test_physical_copy_of_a_staging_env_then_gc(created):
    s, _, _, _ = created
    r = staging.create(s, "stage-p", source=NAME, ttl="1s")
    assert r["strategy"] == "physical" and s.env("stage-p").status().healthy
    assert _counts(s.env("stage-p")) == _counts(s.env(NAME))
    time.sleep(1.1)
    assert staging.gc(s, dry_run=True)["removed"] == [{"environment": "stage-p", "reason": "expired"}]
    assert staging.gc(s)["removed"][0]["environment"] == "stage-p"
    assert "stage-p" not in s.state.env_names() and not s.state.env_dir("stage-p").exists()
    assert not s.state.secrets_dir("stage-p").exists()


def test_bad_input_is_refused_and_nothing_is_created(created, tmp_path):
    s, _, _, _ = created
    with pytest.raises(BadInput, match="is in use"):
        staging.create(s, NAME)
    with pytest.raises(RefusedToTouchProduction):
        staging.destroy(s, "production")
    with pytest.raises(BadInput, match="unknown|no version"):
        staging.create(s, "stage-v", versions={"assistant": "9.9.9"})
    assert "stage-v" not in s.state.env_names()


def test_missing_masking_column_is_a_clear_error(created, monkeypatch):
    s, _, _, _ = created
    rules = s.manifest.staging.masking["assistant"]["users"]
    monkeypatch.setitem(rules, "first_name", "fake_first_name")  # production runs 1.0.0: no first_name
    with pytest.raises(ManifestError) as e:
        staging.create(s, "stage-m")
    assert "users.first_name does not exist in database 'assistant'" in e.value.message
    assert "if_exists" in e.value.one_line()
    assert not s.state.env_dir("stage-m").exists() and not s.state.secrets_dir("stage-m").exists()


def test_destroy_then_production_not_running(created):
    s, _, _, _ = created
    assert staging.destroy(s, NAME)["destroyed"] == NAME
    assert NAME not in s.state.env_names()
    s.env("production").down()  # the last test of the module: production stays down
    with pytest.raises(BadInput, match="is not running"):
        staging.create(s, "stage-x")
    assert not s.state.env_dir("stage-x").exists()
