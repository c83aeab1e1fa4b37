"""The lock/WAL sampler against a real cluster: a held ACCESS EXCLUSIVE lock, a blocked reader, WAL."""

from __future__ import annotations

import threading
import time

import pytest

from upgrade_infra.core import sql
from upgrade_infra.core.errors import BadInput
from upgrade_infra.migration.sampler import LockSampler, LockSpan, SamplerResult


def test_interval_is_bounded():
    with pytest.raises(BadInput):
        LockSampler({}, interval_s=0.5)


def test_summary_is_per_table_and_exclusive_only():
    r = SamplerResult(0.05, locks=[
        LockSpan("a", "messages", "table", "AccessExclusiveLock", 1, 1.0, 6.0),
        LockSpan("a", "messages", "table", "ShareLock", 1, 0.5, 7.0),
        LockSpan("a", "users", "table", "RowExclusiveLock", 2, 0.0, 9.0),
        LockSpan("a", "ix_messages", "index", "AccessExclusiveLock", 1, 0.0, 9.0)])
    t = r.per_table()
    assert list(t) == ["a.messages", "a.users"]
    assert t["a.messages"]["longest_exclusive_s"] == 5.0 and t["a.messages"]["longest_write_blocking_s"] == 6.5
    assert t["a.users"]["longest_exclusive_mode"] is None
    assert r.longest_exclusive().relation == "messages"


def test_lock_blocked_reader_and_wal(pg_cluster):
    pg_cluster.create_database("sampler")
    ci = pg_cluster.admin("sampler")
    sql.execute(ci, "CREATE TABLE t (id int)", "INSERT INTO t SELECT generate_series(1, 1000)")
    blocked_done = threading.Event()

    def reader():
        sql.fetch(ci, "SELECT count(*) FROM t")
        blocked_done.set()

    with LockSampler({"sampler": ci}, interval_s=0.05) as s:
        with sql.connect(ci, autocommit=False) as holder:
            holder.execute("CREATE TABLE fresh (v int)")  # invisible to others until commit
            holder.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
            holder.execute("INSERT INTO fresh SELECT generate_series(1, 20000)")
            holder_pid = holder.execute("SELECT pg_backend_pid() AS p").fetchone()["p"]
            th = threading.Thread(target=reader)
            th.start()
            time.sleep(1.0)
            holder.commit()
        th.join(10)
        time.sleep(0.1)
    r = s.result
    assert blocked_done.is_set() and not r.errors
    assert r.samples >= 10 and r.max_gap_s < 0.5
    t = r.per_table()
    assert t["sampler.t"]["longest_exclusive_mode"] == "AccessExclusiveLock"
    assert t["sampler.t"]["longest_exclusive_s"] >= 0.7
    assert "sampler.fresh" in t  # resolved by oid after the creating transaction committed
    assert r.longest_exclusive().pid == holder_pid
    [b] = [b for b in r.blocked if b.relation == "t"]
    assert b.blocked_by == [holder_pid] and b.mode == "AccessShareLock" and b.max_wait_s >= 0.5
    assert r.wal_bytes and r.wal_bytes > 100_000
    d = r.to_dict()
    assert d["blocked"][0]["query"].startswith("SELECT count(*) FROM t")
