"""PostgreSQL major compatibility: dump an environment's databases, restore them into a scratch server
of another available major (system 15, the ``pgserver`` wheel's 16, …), fingerprint and check there.

The source is only read (``pg_dump`` runs in a read-only snapshot). For each target: a scratch server
from the backend's :class:`ScratchServers` capability (``local``: a cluster under ``<state>/scratch/``),
the source's roles (NOLOGIN) and databases, ``pg_restore``, then fingerprints compared with the source's
and every constraint and invariant re-checked. The scratch server is removed whatever happens.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psycopg import sql as psql

from upgrade_infra.backends import pgtools
from upgrade_infra.backends.interface import Database, ScratchServers, ServerInfo
from upgrade_infra.core import sql
from upgrade_infra.core.errors import PostgresNotFound
from upgrade_infra.migration.integrity import check_constraints, check_invariants
from upgrade_infra.restore.fingerprint import fingerprint, fingerprint_conninfos

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment

ROLES = psql.SQL("SELECT rolname AS name FROM pg_roles WHERE rolname !~ '^pg_' AND rolname <> current_user ORDER BY 1")
DB_OWNER = psql.SQL("SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = %s")


def create_role_nologin(name: str) -> psql.Composed:
    return psql.SQL("CREATE ROLE {} NOLOGIN").format(psql.Identifier(name))


def tool_install(source: Database, target: Database) -> Database:
    """pg_dump/pg_restore of the newer major: it reads older servers and writes archives both restore."""
    return target if target.major >= source.major else source


def targets_for(source_major: int, majors: list[int] | None, available: list[ServerInfo]) -> list[ServerInfo]:
    installs = {i.major: i for i in available}
    wanted = majors if majors else [m for m in sorted(installs) if m != source_major]
    missing = [m for m in wanted if m not in installs]
    if missing or not wanted:
        have = ", ".join(f"{i.major} ({i.source})" for i in installs.values()) or "none"
        raise PostgresNotFound(f"PostgreSQL {', '.join(map(str, missing)) or 'of another major'} not available "
                               f"(have: {have})", fix="pip install pgserver (16) or apt-get install postgresql-NN")
    return [installs[m] for m in wanted]


@dataclass
class TargetResult:
    major: int
    version: str
    source: str
    seconds: dict[str, float] = field(default_factory=dict)
    differences: list[str] = field(default_factory=list)
    constraints_failed: list[str] = field(default_factory=list)
    invariants_failed: list[str] = field(default_factory=list)
    tables: int = 0
    rows: int = 0
    error: str | None = None

    @property
    def passed(self) -> bool:
        return not (self.error or self.differences or self.constraints_failed or self.invariants_failed)

    def to_dict(self) -> dict[str, Any]:
        return {"major": self.major, "version": self.version, "source": self.source, "passed": self.passed,
                "seconds": self.seconds, "tables": self.tables, "rows": self.rows, "differences": self.differences,
                "constraints_failed": self.constraints_failed, "invariants_failed": self.invariants_failed,
                "error": self.error}


@dataclass
class CrossMajorResult:
    environment: str
    source_major: int
    source_version: str
    source_fingerprint_s: float = 0.0
    targets: list[TargetResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.targets) and all(t.passed for t in self.targets)

    def to_dict(self) -> dict[str, Any]:
        return {"environment": self.environment, "source_major": self.source_major,
                "source_version": self.source_version, "source_fingerprint_s": self.source_fingerprint_s,
                "passed": self.passed,
                "targets": [t.to_dict() for t in self.targets]}


def cross_major(env: Environment, majors: list[int] | None = None, databases: list[str] | None = None) -> CrossMajorResult:
    dbs = list(databases or env.manifest.postgres.databases)
    scratch = env.capability(ScratchServers)  # exit 2 on a backend that cannot run other majors
    src = env.database
    targets = targets_for(src.major, majors, scratch.available())
    before = fingerprint(env, dbs)
    res = CrossMajorResult(env.name, src.major, before.postgres, before.seconds)
    for target in targets:
        tr = TargetResult(target.major, target.version, target.source)
        res.targets.append(tr)
        try:
            _one_target(env, scratch, target, dbs, before, tr)
        except Exception as e:  # noqa: BLE001 - one target failing is a result, not a crash
            tr.error = str(e).strip().splitlines()[0][:500]
    return res


def _one_target(env: Environment, scratch: ScratchServers, target: ServerInfo, dbs: list[str], before,
                tr: TargetResult) -> None:
    t = time.monotonic()
    with scratch.scratch(target.major) as server:
        d = Path(tempfile.mkdtemp(prefix=".crossmajor-", dir=env.dir))  # the dumps: the tool's own files
        try:
            _fill_and_check(env, server, d, dbs, before, tr, t)
        finally:
            shutil.rmtree(d, ignore_errors=True)


def _fill_and_check(env: Environment, server: Database, d: Path, dbs: list[str], before, tr: TargetResult,
                    t: float) -> None:
    # the newer major's tools, on the tool's host: both servers are reached by their host addresses
    tools = tool_install(env.database, server)
    admin = server.conninfo()
    for r in sql.fetch(env.conninfo(), ROLES, read_only=True):
        sql.execute(admin, create_role_nologin(r["name"]))
    tr.seconds["scratch_cluster"] = round(time.monotonic() - t, 3)
    dump_s = restore_s = 0.0
    for db in dbs:
        owner = sql.fetch_value(env.conninfo(), DB_OWNER, [db], read_only=True)
        sql.execute(admin, sql.create_database(db, owner=owner))
        out = d / f"dump-{db}"
        t = time.monotonic()
        tools.run_tool("pg_dump", pgtools.dump_args(env.conninfo(db), out), timeout=7200)
        dump_s += time.monotonic() - t
        t = time.monotonic()
        tools.run_tool("pg_restore", pgtools.restore_args(server.conninfo(db), out), timeout=7200)
        restore_s += time.monotonic() - t
        shutil.rmtree(out, ignore_errors=True)
    tr.seconds.update(dump=round(dump_s, 3), restore=round(restore_s, 3))
    t = time.monotonic()
    conninfos = {db: server.conninfo(db) for db in dbs}
    after = fingerprint_conninfos(conninfos, f"{env.name}@pg{server.major}")
    tr.seconds["fingerprint"] = round(time.monotonic() - t, 3)
    tr.differences = [str(x) for x in before.diff(after)]
    tr.tables, tr.rows = len(after.tables), after.total_rows()
    t = time.monotonic()
    for db in dbs:
        tables = {tb for dd, tb in after.tables if dd == db}
        tr.constraints_failed += [f"{c['db']}.{c['table']}: {c['constraint']}: {c['problem']}"
                                  for c in check_constraints(conninfos[db], db, after, tables, True) if not c["ok"]]
    tr.invariants_failed = [f"{i['name']}: {i['problem']}" for i in
                            check_invariants(conninfos, [i for i in env.manifest.migration.invariants
                                                         if i.database in dbs]) if not i["ok"]]
    tr.seconds["checks"] = round(time.monotonic() - t, 3)
