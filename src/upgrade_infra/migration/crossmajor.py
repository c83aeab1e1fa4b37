"""PostgreSQL major compatibility: dump an environment's databases, restore them into a scratch cluster
of another available major (system 15, the ``pgserver`` wheel's 16, …), fingerprint and check there.

The source is only read (``pg_dump`` runs in a read-only snapshot). For each target: initdb a scratch
cluster under ``<state>/scratch/``, create the source's roles (NOLOGIN) and databases, ``pg_restore``,
then compare fingerprints with the source's and re-check every constraint and invariant. The scratch
cluster is stopped and removed whatever happens.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psycopg import sql as psql

from upgrade_infra.backends.local import postgres as pglib
from upgrade_infra.core import runner, sql
from upgrade_infra.core.errors import PostgresNotFound
from upgrade_infra.migration.integrity import check_constraints, check_invariants
from upgrade_infra.restore.dump import pg_dump_argv, pg_restore_argv
from upgrade_infra.restore.fingerprint import fingerprint, fingerprint_conninfos
from upgrade_infra.stack.ports import free_port

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment

ROLES = psql.SQL("SELECT rolname AS name FROM pg_roles WHERE rolname !~ '^pg_' AND rolname <> current_user ORDER BY 1")
DB_OWNER = psql.SQL("SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = %s")


def create_role_nologin(name: str) -> psql.Composed:
    return psql.SQL("CREATE ROLE {} NOLOGIN").format(psql.Identifier(name))


def tool_install(source: pglib.PgInstall, target: pglib.PgInstall) -> pglib.PgInstall:
    """pg_dump/pg_restore of the newer major: it reads older servers and writes archives both restore."""
    return target if target.major >= source.major else source


def targets_for(source_major: int, majors: list[int] | None) -> list[pglib.PgInstall]:
    installs = {i.major: i for i in reversed(pglib.find_installs())}  # first found wins per major
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


def scratch_cluster(env: Environment, install: pglib.PgInstall) -> tuple[pglib.Cluster, Path]:
    root = env.state.server_dir("scratch", pglib.server_user())  # reachable by the server user
    d = root / f"crossmajor-{install.major}-{os.getpid()}-{random.randrange(1 << 16):04x}"
    d.mkdir()
    os.chmod(d, 0o711)
    c = pglib.Cluster(install, d / "data", pglib.socket_dir_for(d), free_port(), d / "postgres.log",
                      pglib.server_user())
    return c, d


def cross_major(env: Environment, majors: list[int] | None = None, databases: list[str] | None = None) -> CrossMajorResult:
    dbs = list(databases or env.manifest.postgres.databases)
    src = env.cluster.install
    targets = targets_for(src.major, majors)
    before = fingerprint(env, dbs)
    res = CrossMajorResult(env.name, src.major, before.postgres, before.seconds)
    for target in targets:
        tr = TargetResult(target.major, target.version, target.source)
        res.targets.append(tr)
        try:
            _one_target(env, target, dbs, before, tr)
        except Exception as e:  # noqa: BLE001 - one target failing is a result, not a crash
            tr.error = str(e).strip().splitlines()[0][:500]
    return res


def _one_target(env: Environment, target: pglib.PgInstall, dbs: list[str], before, tr: TargetResult) -> None:
    cluster, d = scratch_cluster(env, target)
    tools = tool_install(env.cluster.install, target)
    try:
        t = time.monotonic()
        cluster.init()
        cluster.start()
        admin = cluster.admin_conninfo()
        for r in sql.fetch(env.conninfo(), ROLES, read_only=True):
            sql.execute(admin, create_role_nologin(r["name"]))
        tr.seconds["scratch_cluster"] = round(time.monotonic() - t, 3)
        dump_s = restore_s = 0.0
        for db in dbs:
            owner = sql.fetch_value(env.conninfo(), DB_OWNER, [db], read_only=True)
            sql.execute(admin, sql.create_database(db, owner=owner))
            out = d / f"dump-{db}"
            t = time.monotonic()
            runner.run(pg_dump_argv(tools, env.conninfo(db), out), timeout=7200)
            dump_s += time.monotonic() - t
            t = time.monotonic()
            runner.run(pg_restore_argv(tools, cluster.admin_conninfo(db), out), timeout=7200)
            restore_s += time.monotonic() - t
            shutil.rmtree(out, ignore_errors=True)
        tr.seconds.update(dump=round(dump_s, 3), restore=round(restore_s, 3))
        t = time.monotonic()
        conninfos = {db: cluster.admin_conninfo(db) for db in dbs}
        after = fingerprint_conninfos(conninfos, f"{env.name}@pg{target.major}")
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
    finally:
        try:
            cluster.stop(mode="immediate")
        finally:
            env.state.remove(d, ignore_errors=True)
            if not cluster.socket_dir.is_relative_to(d):
                shutil.rmtree(cluster.socket_dir, ignore_errors=True)
