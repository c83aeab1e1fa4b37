"""Canary readers: stand-ins for the application's traffic while a migration runs on staging.

Staging has no users, so nobody would be blocked by a migration's locks and the "blocked
sessions" part of the report would always be empty. One read-only session per database loops over
the tables that existed before the migration, ``SELECT 1 FROM t LIMIT 1``, and records how long each
read took: a read that waits behind an ACCESS EXCLUSIVE lock shows up in the sampler as a blocked
session, and here as the longest read wait per table. Reads take ACCESS SHARE only.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from psycopg import sql as psql

from upgrade_infra.core import sql

APP_NAME = "upgrade-infra-canary"


def probe_query(schema: str, table: str) -> psql.Composed:
    return psql.SQL("SELECT 1 FROM {}.{} LIMIT 1").format(psql.Identifier(schema), psql.Identifier(table))


class Canary:
    def __init__(self, conninfos: dict[str, str], tables: dict[str, list[str]], timeout_s: float,
                 pause_s: float = 0.05, schema: str = "public") -> None:
        self.conninfos, self.tables, self.timeout_s, self.pause_s, self.schema = (
            conninfos, tables, timeout_s, pause_s, schema)
        self.longest: dict[str, float] = {}
        self.reads = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Canary:
        for db, tables in self.tables.items():
            if tables:
                th = threading.Thread(target=self._run, args=(db, tables), name=f"canary-{db}", daemon=True)
                th.start()
                self._threads.append(th)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for th in self._threads:
            th.join(self.timeout_s + 5)

    def _run(self, db: str, tables: list[str]) -> None:
        ci = f"{self.conninfos[db]} application_name={APP_NAME}"
        try:
            with sql.connect(ci, read_only=True) as c:
                c.execute(psql.SQL("SET statement_timeout = {}").format(psql.Literal(int(self.timeout_s * 1000))))
                while not self._stop.is_set():
                    for t in tables:
                        t0 = time.monotonic()
                        try:
                            c.execute(probe_query(self.schema, t))
                        except Exception as e:  # noqa: BLE001 - a table dropped by the migration, a timeout
                            self.errors.append(f"{db}.{t}: {str(e).strip().splitlines()[0][:120]}")
                        key = f"{db}.{t}"
                        self.longest[key] = max(self.longest.get(key, 0.0), time.monotonic() - t0)
                        self.reads += 1
                    self._stop.wait(self.pause_s)
        except Exception as e:  # noqa: BLE001 - the canary reports, never breaks the rehearsal
            self.errors.append(f"{db}: {e}")

    def to_dict(self) -> dict[str, Any]:
        return {"reads": self.reads, "longest_read_s": {k: round(v, 3) for k, v in
                                                         sorted(self.longest.items(), key=lambda kv: -kv[1])},
                "errors": sorted(set(self.errors))[:10]}
