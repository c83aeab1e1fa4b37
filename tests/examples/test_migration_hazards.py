"""The 1.1.0-lossy and 1.1.0-locking fixtures really do what they are for."""
import time

import psycopg
import pytest

from pa_apps.automations.spec import SPEC as AUTOMATIONS
from pa_apps.common.cli import main


def test_lossy_release_loses_every_system_prompt(stack):
    stack.migrate("1.0.0")
    stack.seed(0.2)
    with psycopg.connect(stack.assistant_db) as conn:
        agents = conn.execute("SELECT count(*) FROM agents WHERE system_prompt <> ''").fetchone()[0]
    assert agents > 0
    stack.cli("assistant", "migrate", "--release", "1.1.0-lossy")
    with psycopg.connect(stack.assistant_db) as conn:
        total, kept = conn.execute("SELECT count(*), count(*) FILTER (WHERE system_prompt <> '') FROM agents").fetchone()
        split = conn.execute("SELECT count(*) FROM users WHERE first_name <> ''").fetchone()[0]
    assert (total, kept) == (agents, 0)  # rows remain, values gone
    assert split == 300
    # 1.1.0 is on another branch: neither migrate nor serve touch the database
    refused = stack.cli("assistant", "serve", "--release", "1.1.0", "--port", "9", check=False)
    assert refused.returncode == 3 and "not on the lineage" in refused.stderr


def test_locking_release_holds_access_exclusive_on_messages(stack):
    stack.migrate("1.0.0")
    stack.seed(0.2)
    started = time.monotonic()
    migration = stack.popen("assistant", "migrate", "--release", "1.1.0-locking", PA_LOCK_SECONDS="2")
    seen_lock = blocked = False
    with psycopg.connect(stack.assistant_db, autocommit=True) as conn:
        while migration.poll() is None and not (seen_lock and blocked):
            seen_lock = seen_lock or conn.execute(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "WHERE c.relname = 'messages' AND l.mode = 'AccessExclusiveLock' AND l.granted "
                "AND l.pid <> pg_backend_pid()"
            ).fetchone()[0] > 0
            if seen_lock and not blocked:
                conn.execute("SET lock_timeout = '200ms'")
                with pytest.raises(psycopg.errors.LockNotAvailable):
                    conn.execute("SELECT count(*) FROM messages")
                blocked = True
            time.sleep(0.05)
    out, err = migration.communicate(timeout=30)
    assert migration.returncode == 0, err
    assert seen_lock and blocked
    assert time.monotonic() - started >= 2
    with psycopg.connect(stack.assistant_db) as conn:
        assert conn.execute("SELECT count(search_key) = count(*) FROM messages").fetchone()[0]
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == "r110_locking"


def test_offline_sql_and_current_commands(stack):
    up = stack.cli("assistant", "sql", "--from", "1.0.0", "--to", "1.1.0").stdout
    assert up.startswith("BEGIN;") and "ALTER TABLE users DROP COLUMN full_name;" in up
    assert stack.cli("automations", "current").stdout.split() == ["base", "unknown"]


@pytest.mark.parametrize("argv, code, message", [
    (["migrate", "--release", "7.0.0"], 2, "unknown release '7.0.0'"),
    (["sql", "--from", "1.1.0-lossy", "--to", "1.2.0"], 3, "different branches"),
])
def test_cli_errors_have_exit_codes(argv, code, message, caplog):
    assert main(AUTOMATIONS, argv) == code
    assert message in caplog.text
