"""A background sampler of locks, blocked sessions and WAL while a migration runs.

A thread with its own connections polls ``pg_locks`` (one cluster-wide query, shared memory: cheap)
every ``interval_s`` (default 50 ms, never more than 100 ms); relation names (per database) and
session queries (``pg_stat_activity``) are looked up once, when first seen. It keeps, per relation,
lock mode and session, the first and last time the lock was seen held:
the longest exclusive lock per table is ``last_seen - first_seen`` (resolution: one interval).
Sessions waiting on a lock are recorded with who blocks them and for how long. WAL generated is
the difference of ``pg_current_wal_lsn()`` between start and stop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql as psql

from upgrade_infra.core import sql
from upgrade_infra.core.errors import BadInput

MAX_INTERVAL_S = 0.1
# Modes that block writers; the first two also count as "exclusive" for the manifest's threshold.
EXCLUSIVE_MODES = ("AccessExclusiveLock", "ExclusiveLock")
WRITE_BLOCKING_MODES = (*EXCLUSIVE_MODES, "ShareRowExclusiveLock", "ShareLock")
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")

# One cheap query per tick, cluster-wide (pg_locks is shared memory); OIDs below 16384 are catalogs.
LOCKS = psql.SQL(
    "SELECT l.pid, l.mode, l.granted, l.relation::bigint AS oid, d.datname AS db, "
    "extract(epoch FROM clock_timestamp() - l.waitstart)::float8 AS waiting_s "
    "FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
    "WHERE l.locktype = 'relation' AND l.relation >= 16384 AND NOT (l.pid = ANY(%s))")
# Only for sessions seen for the first time, and for waiting ones.
SESSIONS = psql.SQL("SELECT pid, left(query, 200) AS query, pg_blocking_pids(pid) AS blocked_by "
                    "FROM pg_stat_activity WHERE pid = ANY(%s)")
RELINFO = psql.SQL("SELECT c.oid::bigint AS oid, c.relname, c.relkind::text AS relkind, n.nspname "
                   "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = ANY(%s)")
WAL_LSN = psql.SQL("SELECT pg_current_wal_lsn()::text AS lsn")
WAL_DIFF = psql.SQL("SELECT pg_wal_lsn_diff(%s::pg_lsn, %s::pg_lsn)::bigint AS bytes")
BACKEND_PID = psql.SQL("SELECT pg_backend_pid() AS pid")


@dataclass
class LockSpan:
    db: str
    relation: str
    kind: str  # table | index | sequence | view | other | unknown | transient (never visible to others)
    mode: str
    pid: int
    first_seen: float
    last_seen: float
    query: str = ""

    @property
    def held_s(self) -> float:
        return round(self.last_seen - self.first_seen, 3)

    def to_dict(self) -> dict[str, Any]:
        return {"db": self.db, "relation": self.relation, "kind": self.kind, "mode": self.mode, "pid": self.pid,
                "first_seen_s": round(self.first_seen, 3), "last_seen_s": round(self.last_seen, 3),
                "held_s": self.held_s, "query": self.query}


@dataclass
class BlockedSession:
    pid: int
    db: str
    mode: str
    relation: str
    blocked_by: list[int]
    first_seen: float
    last_seen: float
    max_wait_s: float
    query: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "db": self.db, "mode": self.mode, "relation": self.relation,
                "blocked_by": self.blocked_by, "first_seen_s": round(self.first_seen, 3),
                "max_wait_s": round(self.max_wait_s, 3), "query": self.query}


@dataclass
class SamplerResult:
    interval_s: float
    duration_s: float = 0.0
    samples: int = 0
    max_gap_s: float = 0.0
    busy_s: float = 0.0  # wall time spent taking samples
    cpu_s: float = 0.0  # CPU the sampler used: its thread + its server sessions (its cost to the machine)
    wal_bytes: int | None = None
    locks: list[LockSpan] = field(default_factory=list)
    blocked: list[BlockedSession] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def per_table(self) -> dict[str, dict[str, Any]]:
        """``db.table`` -> longest hold per mode, and the longest exclusive lock (DBLab-style summary)."""
        out: dict[str, dict[str, Any]] = {}
        for s in self.locks:
            if s.kind not in ("table", "unknown"):
                continue
            t = out.setdefault(f"{s.db}.{s.relation}", {"modes": {}, "longest_exclusive_s": 0.0,
                                                         "longest_exclusive_mode": None,
                                                         "longest_write_blocking_s": 0.0})
            t["modes"][s.mode] = max(t["modes"].get(s.mode, 0.0), s.held_s)
            if s.mode in EXCLUSIVE_MODES and s.held_s >= t["longest_exclusive_s"]:
                t["longest_exclusive_s"], t["longest_exclusive_mode"] = s.held_s, s.mode
            if s.mode in WRITE_BLOCKING_MODES:
                t["longest_write_blocking_s"] = max(t["longest_write_blocking_s"], s.held_s)
        return dict(sorted(out.items(), key=lambda kv: -kv[1]["longest_exclusive_s"]))

    def longest_exclusive(self) -> LockSpan | None:
        spans = [s for s in self.locks if s.mode in EXCLUSIVE_MODES and s.kind in ("table", "unknown")]
        return max(spans, key=lambda s: s.held_s, default=None)

    def to_dict(self) -> dict[str, Any]:
        return {"interval_s": self.interval_s, "duration_s": round(self.duration_s, 3), "samples": self.samples,
                "max_gap_s": round(self.max_gap_s, 3), "busy_s": round(self.busy_s, 3), "cpu_s": round(self.cpu_s, 3), "wal_bytes": self.wal_bytes,
                "per_table": self.per_table(), "locks": [s.to_dict() for s in self.locks],
                "blocked": [b.to_dict() for b in self.blocked], "errors": self.errors[:20]}


KINDS = {"r": "table", "p": "table", "i": "index", "S": "sequence", "v": "view", "m": "view", "t": "other"}


class LockSampler:
    """``with LockSampler({db: conninfo}) as s: migrate()`` then ``s.result``.

    ``backend_cpu(pids)``: CPU seconds the server has spent so far in the sampler's own backends (the
    environment's ``database.backend_cpu_s``; the sampler's cost then includes them), else 0."""

    def __init__(self, conninfos: dict[str, str], interval_s: float = 0.05,
                 backend_cpu: Callable[[list[int]], float] | None = None) -> None:
        if not 0 < interval_s <= MAX_INTERVAL_S:
            raise BadInput(f"sampler interval {interval_s}s out of range", fix=f"use 0 < interval <= {MAX_INTERVAL_S}")
        self.conninfos = dict(conninfos)
        self._backend_cpu = backend_cpu or (lambda pids: 0.0)
        self.result = SamplerResult(interval_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._open: dict[tuple, LockSpan] = {}
        self._waiting: dict[int, BlockedSession] = {}
        self._rels: dict[tuple[str, int], tuple[str, str]] = {}  # (db, oid) -> (name, kind)
        self._queries: dict[int, str] = {}  # pid -> its query when first seen
        self._blockers: dict[int, list[int]] = {}
        self._t0 = 0.0
        self._wal0: str | None = None

    def __enter__(self) -> LockSampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lock-sampler", daemon=True)
        self._thread.start()
        self._ready.wait(15)

    def stop(self) -> SamplerResult:
        self._stop.set()
        if self._thread:
            self._thread.join(30)
        return self.result

    # -- the thread -----------------------------------------------------------------------------
    def _run(self) -> None:
        from contextlib import ExitStack

        r = self.result
        with ExitStack() as stack:
            try:
                conns = {db: stack.enter_context(sql.connect(ci)) for db, ci in self.conninfos.items()}
            except Exception as e:  # noqa: BLE001 - the sampler reports, never breaks the migration
                r.errors.append(f"connect: {e}")
                self._ready.set()
                return
            own = [c.execute(BACKEND_PID).fetchone()["pid"] for c in conns.values()]
            cpu0 = time.thread_time() + self._backend_cpu(own)
            first = next(iter(conns.values()))
            self._wal0 = first.execute(WAL_LSN).fetchone()["lsn"]
            self._t0 = time.monotonic()
            self._ready.set()
            prev: float | None = None
            while True:
                t = time.monotonic()
                if prev is not None:
                    r.max_gap_s = max(r.max_gap_s, t - prev)
                prev = t
                self._tick(conns, own, t - self._t0)
                r.samples += 1
                r.busy_s += time.monotonic() - t
                if self._stop.wait(max(0.0, r.interval_s - (time.monotonic() - t))):
                    break
            self._tick(conns, own, time.monotonic() - self._t0)
            r.samples += 1
            r.duration_s = time.monotonic() - self._t0
            r.cpu_s = time.thread_time() + self._backend_cpu(own) - cpu0
            self._finish(conns, first)

    def _tick(self, conns: dict, own: list[int], now: float) -> None:
        rows = self._query(next(iter(conns.values())), LOCKS, [own], "locks")
        self._resolve(conns, {(r["db"], r["oid"]) for r in rows} - set(self._rels))
        new_pids = {r["pid"] for r in rows} - set(self._queries)
        waiting = [r for r in rows if not r["granted"]]
        if new_pids or waiting:
            pids = sorted(new_pids | {r["pid"] for r in waiting})
            for pid in pids:
                self._queries.setdefault(pid, "")  # asked once, even when the session is already gone
            for x in self._query(next(iter(conns.values())), SESSIONS, [pids], "sessions"):
                self._queries[x["pid"]] = x["query"] or ""
                self._blockers[x["pid"]] = list(x["blocked_by"] or [])
        seen: set[tuple] = set()
        for row in rows:
            rel = self._rels.get((row["db"], row["oid"]), (f"oid:{row['oid']}", "unknown"))
            if rel[1] == "system" or row["db"] not in self.conninfos:
                continue
            if not row["granted"]:
                self._waiting_row(row, rel[0], now)
                continue
            key = (row["db"], row["oid"], row["mode"], row["pid"])
            seen.add(key)
            span = self._open.get(key)
            if span is None:
                span = LockSpan(row["db"], rel[0], rel[1], row["mode"], row["pid"], now, now,
                                self._queries.get(row["pid"], ""))
                self._open[key] = span
                self.result.locks.append(span)
            span.last_seen = now
        for key in [k for k in self._open if k not in seen]:
            del self._open[key]  # released: a later sighting starts a new span
        still = {r["pid"] for r in waiting}
        for pid in [p for p in self._waiting if p not in still]:
            del self._waiting[pid]

    def _resolve(self, conns: dict, wanted: set[tuple[str, int]]) -> None:
        """Names of relations seen for the first time (asked once; invisible ones stay ``oid:N``)."""
        for db in {d for d, _ in wanted if d in conns}:
            oids = [o for d, o in wanted if d == db]
            for x in self._query(conns[db], RELINFO, [oids], f"{db} names"):
                system = x["nspname"] in SYSTEM_SCHEMAS
                self._rels[(db, x["oid"])] = (x["relname"], "system" if system else KINDS.get(x["relkind"], "other"))
            for o in oids:
                self._rels.setdefault((db, o), (f"oid:{o}", "unknown"))

    def _query(self, c, query: psql.Composable, params: list, label: str) -> list[dict]:
        try:
            return c.execute(query, params).fetchall()
        except Exception as e:  # noqa: BLE001 - a failed sample is recorded, the next one is taken
            self.result.errors.append(f"{label}: {str(e).strip()[:200]}")
            return []

    def _waiting_row(self, row: dict, relation: str, now: float) -> None:
        b = self._waiting.get(row["pid"])
        if b is None:
            b = BlockedSession(row["pid"], row["db"], row["mode"], relation, [], now, now, 0.0,
                               self._queries.get(row["pid"], ""))
            self._waiting[row["pid"]] = b
            self.result.blocked.append(b)
        b.last_seen = now
        b.max_wait_s = max(b.max_wait_s, float(row["waiting_s"] or 0.0), now - b.first_seen)
        b.blocked_by = sorted(set(b.blocked_by) | set(self._blockers.get(row["pid"], [])))

    def _finish(self, conns: dict, first) -> None:
        """WAL generated, and names of relations that were invisible while their creating transaction ran."""
        r = self.result
        try:
            end = first.execute(WAL_LSN).fetchone()["lsn"]
            r.wal_bytes = int(first.execute(WAL_DIFF, [end, self._wal0]).fetchone()["bytes"])
        except Exception as e:  # noqa: BLE001
            r.errors.append(f"wal: {e}")
        for db, c in conns.items():  # relations created by the migration are visible once it committed
            want = {int(x.relation[4:]) for x in [*r.locks, *r.blocked] if x.db == db and x.relation.startswith("oid:")}
            names = {f"oid:{x['oid']}": x for x in self._query(c, RELINFO, [sorted(want)], "names")} if want else {}
            for x in [*r.locks, *r.blocked]:
                if x.db != db or not x.relation.startswith("oid:"):
                    continue
                info = names.get(x.relation)
                if isinstance(x, LockSpan):  # created and dropped inside the migration: a rewrite's new heap
                    x.kind = KINDS.get(info["relkind"], "other") if info else "transient"
                if info:
                    x.relation = info["relname"]
