"""``dump``: online logical copy, ``pg_dump -Fd -j N -Z 0`` into ``pg_restore -j N``.

The source stays up: pg_dump reads one consistent snapshot per database, and every one of its
sessions is read-only (``default_transaction_read_only=on`` through ``PGOPTIONS``). Dumps are
uncompressed (compression dominates pg_dump's time on a local copy) and restored into a fresh
database beside the target's current one; ``commit`` swaps it in with two renames.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from psycopg import sql as psql

from upgrade_infra.backends import pgtools
from upgrade_infra.core import fsutil, sql
from upgrade_infra.core.errors import BadInput
from upgrade_infra.staging.sync import register
from upgrade_infra.staging.sync.base import Copy, Progress, SyncStrategy, data_dirs_bytes, run_watched

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment

READ_ONLY = {"PGOPTIONS": "-c default_transaction_read_only=on"}
SYNC_SUFFIX = "__uinfra_sync"
TABLE_BYTES = psql.SQL("SELECT COALESCE(sum(pg_table_size(c.oid)), 0) AS b FROM pg_class c "
                       "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'm') "
                       "AND n.nspname NOT IN ('pg_catalog', 'information_schema')")
DB_BYTES = psql.SQL("SELECT pg_database_size(%s) AS b")
RELOAD = psql.SQL("SELECT pg_reload_conf()")
BULK_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
                 "max_wal_size": "8GB", "checkpoint_timeout": "30min", "maintenance_work_mem": "256MB"}


def jobs() -> int:
    return max(2, os.cpu_count() or 2)


def dump_args(conninfo: str, out: Path, n_jobs: int) -> list[pgtools.ToolArg]:
    """Uncompressed, unsynced: a throwaway copy restored at once."""
    return pgtools.dump_args(conninfo, out, n_jobs, compress=0, no_sync=True)


def check_majors(source: Environment, target: Environment) -> None:
    """The source's pg_dump (its server's major) writes the dump; the target's pg_restore, which must be
    at least as new, reads it."""
    src, dst = source.database.major, target.database.major
    if dst < src:
        raise BadInput(f"cannot copy PostgreSQL {src} ({source.name}) into PostgreSQL {dst} "
                       f"({target.name}) with a dump", fix="give staging the same or a newer PostgreSQL major")


@register("dump")
class DumpSync(SyncStrategy):
    default_for = frozenset({"production", "staging"})  # copies such a source when none is named (physical is preferred for staging where the backend allows)
    reads_live_source = True

    def unavailable(self, source: Environment, *, stop_source: bool = False) -> tuple[str, str] | None:
        if not source.database_running():
            return (f"{source.kind} environment {source.name!r} is not running (its PostgreSQL is down); the dump "
                    "strategy copies a running source online",
                    f"start it with `upgrade-infra env up {source.name}`, or copy its stopped data dir with "
                    "--strategy physical")
        return None

    def _sizes(self, source: Environment) -> dict[str, int]:
        rows = sql.fetch(source.conninfo(), sql.LIST_DATABASES, read_only=True)
        sizes = {r["name"]: int(r["bytes"]) for r in rows}
        return {db: sizes.get(db, 0) for db in source.manifest.postgres.databases}

    def bytes_needed(self, source: Environment) -> int:
        # uncompressed dump files (at most the database size) + the restored databases + data dirs
        return 2 * sum(self._sizes(source).values()) + data_dirs_bytes(source)

    def copy(self, source: Environment, target: Environment, progress: Progress, *,
             stop_source: bool = False) -> Copy:
        check_majors(source, target)
        fresh = not target.database_exists()  # new server: restore straight into its empty databases
        copy = Copy(self.name, {})
        work = target.dir / "sync"
        target.state.remove(work, ignore_errors=True)
        work.mkdir(parents=True, mode=0o700)
        copy.on_commit.append(lambda: target.state.remove(work, ignore_errors=True))
        copy.on_abort.append(lambda: target.state.remove(work, ignore_errors=True))
        sizes, dbs = self._sizes(source), list(source.manifest.postgres.databases)
        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=2 * len(dbs)) as pool:
            # the dumps start at once; the target cluster is provisioned meanwhile; each database's
            # restore starts when its dump is done, side by side with the other database's dump
            dumps = {db: pool.submit(self._dump, source, db, work, progress) for db in dbs}
            try:
                target.provision_database()  # cluster, roles with staging's own passwords, empty databases
                admin = target.conninfo()
                for db in dbs:
                    tmp = db if fresh else db + SYNC_SUFFIX
                    if not fresh:  # beside the current data until commit
                        sql.execute(admin, sql.drop_database(tmp), sql.create_database(
                            tmp, owner=target.db_info()[db]["user"], template="template0"))
                        copy.on_abort.append(lambda t=tmp: sql.execute(admin, sql.drop_database(t)))
                        copy.on_commit.append(lambda d=db, t=tmp: _swap(admin, d, t))
                    copy.databases[db] = tmp
            except BaseException:
                for f in dumps.values():
                    f.cancel()
                raise
            # a source whose databases another role owns (an adopted Compose project: the user's own
            # superuser) is restored without its owners and ACLs, then handed to the target's owner roles
            src_users, dst_users = source.db_info("tool"), target.db_info("tool")
            remap = {db: dst_users[db]["user"] for db in dbs if src_users[db]["user"] != dst_users[db]["user"]}
            with bulk_load(admin):
                restores = {db: pool.submit(self._restore, target, db, copy.databases[db], dumps[db],
                                            sizes[db], progress, remap.get(db)) for db in dbs}
                per_db = {db: f.result() for db, f in restores.items()}
        copy.stats.update(databases=per_db, bytes=sum(sizes.values()), seconds=round(time.monotonic() - t0, 3))
        return copy

    def _dump(self, source: Environment, db: str, work: Path, progress: Progress) -> dict:
        out = work / db
        t0 = time.monotonic()
        table_bytes = int(sql.fetch_value(source.conninfo(db), TABLE_BYTES, read_only=True) or 0)
        args = dump_args(source.database.tool_conninfo(db), out, jobs())
        run_watched(lambda: source.database.run_tool("pg_dump", args, env=READ_ONLY, timeout=7200),
                    lambda: fsutil.tree_bytes(out), f"dump {db}", table_bytes or None, progress)
        return {"dir": out, "dump_bytes": fsutil.tree_bytes(out), "dump_s": round(time.monotonic() - t0, 3)}

    def _restore(self, target: Environment, db: str, tmp: str, dump: Future, size: int,
                 progress: Progress, owner: str | None = None) -> dict:
        d = dump.result()
        t1 = time.monotonic()
        conn = target.conninfo(tmp)
        base = int(sql.fetch_value(conn, DB_BYTES, [tmp]) or 0)
        args = pgtools.restore_args(target.database.tool_conninfo(tmp), d["dir"], jobs())
        if owner:
            args = ["--no-owner", "--no-acl", *args]
        run_watched(lambda: target.database.run_tool("pg_restore", args, env={}, timeout=7200),
                    lambda: int(sql.fetch_value(conn, DB_BYTES, [tmp]) or 0) - base, f"restore {db}",
                    size or None, progress)
        if owner:
            sql.execute(conn, give_to(owner))
        target.state.remove(d["dir"], ignore_errors=True)
        return {"bytes": size, "dump_bytes": d["dump_bytes"], "dump_s": d["dump_s"],
                "restore_s": round(time.monotonic() - t1, 3)}


@contextmanager
def bulk_load(admin: str) -> Iterator[None]:
    """Settings for loading a staging copy fast (reloadable, no restart), reset when the load ends.

    Staging is disposable: a crash during the load fails the create/sync, which is undone or re-run;
    the restore point taken after the load is a fresh, durable copy (FILE_COPY syncs its files).
    """
    sql.execute(admin, *(psql.SQL("ALTER SYSTEM SET {} = {}").format(psql.Identifier(k), psql.Literal(v))
                         for k, v in BULK_SETTINGS.items()), RELOAD)
    try:
        yield
    finally:
        sql.execute(admin, *(psql.SQL("ALTER SYSTEM RESET {}").format(psql.Identifier(k)) for k in BULK_SETTINGS),
                    RELOAD, psql.SQL("CHECKPOINT"))


GIVE_TO = """DO $uix$ DECLARE r record; owner text := {owner};
  me oid := (SELECT oid FROM pg_roles WHERE rolname = current_user); BEGIN
  FOR r IN SELECT n.nspname FROM pg_namespace n WHERE n.nspowner = me
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = n.oid AND d.deptype = 'e') LOOP
    EXECUTE format('ALTER SCHEMA %I OWNER TO %I', r.nspname, owner);
  END LOOP;
  FOR r IN SELECT c.oid::regclass AS obj, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relowner = me AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                      AND (d.deptype = 'e' OR (c.relkind = 'S' AND d.deptype IN ('a', 'i') AND d.refobjsubid <> 0)))
  LOOP
    EXECUTE format(CASE r.relkind WHEN 'm' THEN 'ALTER MATERIALIZED VIEW %s OWNER TO %I'
                   WHEN 'f' THEN 'ALTER FOREIGN TABLE %s OWNER TO %I' ELSE 'ALTER TABLE %s OWNER TO %I' END,
                   r.obj, owner);
  END LOOP;
  FOR r IN SELECT t.oid::regtype AS obj FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
      WHERE t.typowner = me AND t.typtype IN ('e', 'd', 'r', 'm')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = t.oid AND d.deptype = 'e') LOOP
    EXECUTE format('ALTER TYPE %s OWNER TO %I', r.obj, owner);
  END LOOP;
  FOR r IN SELECT p.oid::regprocedure AS obj FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE p.proowner = me
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e') LOOP
    EXECUTE format('ALTER ROUTINE %s OWNER TO %I', r.obj, owner);
  END LOOP;
END $uix$"""


def give_to(owner: str) -> psql.Composed:
    """Hand every object the restoring superuser made in a database (outside system schemas and
    extensions) to ``owner``: tables (their sequences follow), views, types, routines, schemas."""
    return psql.SQL(GIVE_TO).format(owner=psql.Literal(owner))  # type: ignore[arg-type]


def _swap(admin: str, db: str, tmp: str) -> None:
    sql.terminate_backends(admin, db)
    sql.execute(admin, sql.drop_database(db), sql.rename_database(tmp, db))
