"""PA_ASSISTANT_DB=URL PA_AUTOMATIONS_DB=URL python -m pa_apps.seed [--size-mb N] ...

Run after both services migrated (1.0.0 or 1.1.0+ schema).  Prints one JSON
line at the end: {"bytes", "seconds", "mb_per_s", "rows"} (MB = MiB).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import psycopg

from pa_apps.common.sealing import Sealer
from pa_apps.seed import assistant, automations
from pa_apps.seed.bulk import Stream, fill
from pa_apps.seed.sql import create_chunks, database_size, row_counts, table_exists

MIB = 1024 * 1024
USERS = 300


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pa_apps.seed",
        description="Fill the assistant and automations databases with realistic data.",
    )
    # URLs carry passwords: pass them by environment (argv is visible to every user in `ps`)
    parser.add_argument("--assistant-db", default=os.environ.get("PA_ASSISTANT_DB") or None,
                        help="libpq URL of the assistant database (default: $PA_ASSISTANT_DB)")
    parser.add_argument("--automations-db", default=os.environ.get("PA_AUTOMATIONS_DB") or None,
                        help="libpq URL of the automations database (default: $PA_AUTOMATIONS_DB)")
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("PA_DATA_DIR") or None,
                        help="assistant PA_DATA_DIR for attachment files (default: $PA_DATA_DIR)")
    parser.add_argument("--size-mb", type=float, default=20.0, help="data to add, in MiB (default 20)")
    parser.add_argument("--secret-key-env", default="PA_SECRET_KEY",
                        help="environment variable holding the automations secret key")
    args = parser.parse_args(argv)
    for name, var in (("assistant_db", "PA_ASSISTANT_DB"), ("automations_db", "PA_AUTOMATIONS_DB")):
        if not getattr(args, name):
            parser.error(f"--{name.replace('_', '-')} or ${var} is required")
    return args


def fail(message: str) -> int:
    print(f"seed: {message}", file=sys.stderr)
    return 2


def connect(url: str) -> psycopg.Connection:
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("SET synchronous_commit = off")
    conn.execute("SELECT setseed(0.42)")
    return conn


def report(started: float, added: int, a, b, **extra) -> None:
    seconds = time.monotonic() - started
    rows = {**row_counts(a, assistant.TABLES), **row_counts(b, automations.TABLES)}
    print(json.dumps({
        **extra,
        "bytes": added,
        "seconds": round(seconds, 3),
        "mb_per_s": round(added / MIB / seconds, 2) if seconds > 0 else 0.0,
        "rows": rows,
    }), flush=True)


def seed(args, a: psycopg.Connection, b: psycopg.Connection) -> int:
    started = time.monotonic()
    for conn, table, service in ((a, "users", "assistant"), (b, "workflows", "automations")):
        if not table_exists(conn, table):
            return fail(f"{service} database has no {table} table; start/migrate the service first")
    ast = assistant.AssistantSeeder(a)
    if ast.user_count():
        print(f"seed: assistant database already has {ast.user_count()} users; not seeding again",
              file=sys.stderr)
        report(started, 0, a, b, skipped=True)
        return 0
    secret = os.environ.get(args.secret_key_env)
    if not secret:
        return fail(f"environment variable {args.secret_key_env} (workflow credential key) is not set")
    aut = automations.AutomationsSeeder(b)
    for conn in (a, b):
        create_chunks(conn)  # temp tables exist until the end: excluded from "added"
    base_a, base_b = database_size(a), database_size(b)

    def added() -> int:
        return database_size(a) - base_a + database_size(b) - base_b

    ast.seed_people(USERS)
    aut.seed_workflows(Sealer(secret), ast.agent_ids)
    fill(int(args.size_mb * MIB), added, [
        Stream("messages", ast.messages_batch, lambda: database_size(a), share=0.55, bytes_per_row=1100.0),
        Stream("executions", aut.executions_batch, lambda: database_size(b), share=0.45, bytes_per_row=1000.0),
    ])
    if args.data_dir:
        ast.attachments(Path(args.data_dir))
    else:
        print("seed: no --data-dir/PA_DATA_DIR; no attachment files written", file=sys.stderr)
    report(started, added(), a, b)
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.assistant_db == args.automations_db:
        return fail("the assistant and automations databases must be different")
    if args.size_mb < 0:
        return fail("--size-mb must not be negative")
    with connect(args.assistant_db) as a, connect(args.automations_db) as b:
        return seed(args, a, b)


if __name__ == "__main__":
    raise SystemExit(main())
