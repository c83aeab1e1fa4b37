"""Backend conformance suite: what every environment backend must do, on real PostgreSQL.

Each test runs once per backend (and, for restore points, once per strategy the backend supports);
the tests never name a backend. A new backend's tests start here.

A NEW BACKEND ADDS, in ``tests/backends/conftest.py`` and nowhere else:
  * an entry in ``SETUPS``: a ``BackendSetup`` whose ``write_stack(dest)`` writes the backend's copy
    of the conformance stack (``stacks/<backend>/stack.yaml``: PostgreSQL with the ``ledger``
    database, services ``ledger`` 1.0/2.0 with its migrate/downgrade jobs and ``web``, masking of
    ``ledger.accounts.name``) with ports from the suite's allocator, the restore-point strategies it
    supports (with where their state dir must live), and, if it needs them, a session-wide
    ``context()`` (e.g. a private container engine) and an ``unavailable()`` reason to skip;
  * nothing in this module: if a test here needs a change for the new backend, the backend or the
    interface is what differs, and that is what the suite is for.
Run ``UPGRADE_INFRA_BACKENDS=<name> pytest tests/backends`` (tests/backends/README.md).

Tests stand alone: each test that changes its stack gets a fresh one (its own state dir and port
block, destroyed afterwards); only tests that merely read share the module's stack (``shared``).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from upgrade_infra.backends import open_environment
from upgrade_infra.backends.interface import (
    EnvStatus,
    MissingCapability,  # noqa: E402 - the typed refusal of a strategy whose capability the backend lacks
    ServiceStatus,
)
from upgrade_infra.backends.results import EnvDown, EnvUp
from upgrade_infra.core import lock, sql
from upgrade_infra.core.errors import (
    BadInput,
    CommandFailed,
    PostgresError,
    RefusedToTouchProduction,
    UnknownName,
    UpgradeInfraError,
)
from upgrade_infra.core.journal import Journal
from upgrade_infra.core.steps import StepFailed
from upgrade_infra.operations import rollback as rollbacks
from upgrade_infra.operations import upgrade as upgrades
from upgrade_infra.restore import meta as rp_meta
from upgrade_infra.restore import points as snapshots
from upgrade_infra.restore.fingerprint import fingerprint
from upgrade_infra.stack.ports import holder_of
from upgrade_infra.staging import isolation
from upgrade_infra.staging import lifecycle as staging

from .conftest import SETUPS

PROD = "production"
SERVICE, DB = "ledger", "ledger"  # the service with data: its database (seeded) and its data dir
SEED_ROWS = 500


# -- adapters: the one place a rename in the library is followed -----------------------------------
def run_job(env, service: str, which: str, *, version: str | None = None, timeout: float | None = None,
            **placeholders: Any):
    """Run ``service``'s declared one-off command ``which`` (migrate, downgrade, sql) of ``version``
    in ``env``; returns the finished process (``returncode``, ``stdout``, ``stderr``)."""
    return env.run_job(service, which, version=version, timeout=timeout, **placeholders)


def tool_db_info(env) -> dict[str, dict[str, Any]]:
    """Per database: user, password, host, port, url, as the tool (this test) reaches the server."""
    return env.db_info(view="tool")


def as_dict(result: Any) -> dict[str, Any]:
    """An operation's result as a dict, whether the library returns one or a typed result with ``to_dict()``."""
    return result if isinstance(result, dict) else result.to_dict()


def refusal(exc: BaseException) -> UpgradeInfraError:
    """The typed error behind a refused request (a refusal inside a journaled step comes wrapped)."""
    return exc.cause if isinstance(exc, StepFailed) and isinstance(exc.cause, UpgradeInfraError) else exc


# -- helpers ---------------------------------------------------------------------------------------
def _rows(env, query: str = "SELECT count(*) FROM accounts") -> Any:
    return sql.fetch_value(env.conninfo(DB), query, read_only=True)


def _schema(env) -> int:
    return _rows(env, "SELECT max(v) FROM schema_version")


def _databases(env) -> set[str]:
    return set(sql.database_sizes(env.conninfo()))


def _change_data(env, n: int = 3) -> None:
    sql.execute(env.conninfo(DB), f"INSERT INTO accounts (name, balance) SELECT 'late ' || g, g "
                                  f"FROM generate_series(1, {n}) g")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _processes_mentioning(root: Path) -> list[str]:
    """Live processes whose command line, working dir or environment names a path under ``root``."""
    needle = str(root)
    out = []
    for p in psutil.process_iter(["pid", "cmdline", "cwd"]):
        try:
            if p.pid == os.getpid() or p.status() == psutil.STATUS_ZOMBIE:
                continue
            hay = [" ".join(p.info["cmdline"] or []), p.info["cwd"] or ""]
            try:
                hay += list(p.environ().values())
            except psutil.Error:
                pass
            if any(needle in h for h in hay):
                out.append(f"pid {p.pid}: {' '.join(p.info['cmdline'] or [])[:200]}")
        except psutil.Error:
            continue
    return out


def _lock_free(state, env: str) -> bool:
    """True when another process can take ``env``'s lock exclusively at once."""
    path = lock.lock_path(state, env)
    if not path.exists():
        return True
    code = ("import fcntl, sys; f = open(sys.argv[1]); "
            "fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)")
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True).returncode == 0


# places a backend could leave files outside the state dir
OUTSIDE_ROOTS = [Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"), Path("/run")]


def _markers(s) -> list[str]:
    """What names an entry outside the state dir as belonging to stack ``s``: its state dir's path,
    digests of its paths (how derived names are made) and its PostgreSQL sockets."""
    envs = [*s.state.env_names(), PROD]
    paths = [s.state.root, s.state.pg_base(), *(s.state.env_dir(n) for n in envs),
             *(s.state.pg_base() / "envs" / n for n in envs)]
    digests = [hashlib.sha256(str(p).encode()).hexdigest()[:12] for p in paths]
    ports = {p for n in envs for p in s.env(n).ports.values()}
    return [str(s.state.root), *digests, *(f".s.PGSQL.{p}" for p in sorted(ports))]


def _outside(s, roots: list[Path], markers: list[str]) -> set[Path]:
    """Entries directly in ``roots`` (or one level down) whose name or small content carries a marker."""
    found = set()
    for r in roots:
        try:
            entries = list(r.iterdir())
        except OSError:
            continue
        for e in entries:
            if e == s.state.root or s.state.root.is_relative_to(e):
                continue  # the test's own temp dir holding the state dir
            names = [e.name]
            try:
                if e.is_dir() and not e.is_symlink():
                    names += [c.name for c in list(e.iterdir())[:200]]
                    for c in list(e.iterdir())[:20]:
                        if c.is_file() and c.stat().st_size < 4096:
                            names.append(c.read_text(errors="replace"))
                elif e.is_symlink():
                    names.append(os.readlink(e))
            except OSError:
                continue
            if any(m in n for m in markers for n in names):
                found.add(e)
    return found


def _tree(d: Path) -> dict[str, int]:
    return {str(p.relative_to(d)): (p.lstat().st_size if not p.is_dir() or p.is_symlink() else 0)
            for p in d.rglob("*")}


# == up and status (read only: the module's shared stack) ==========================================
def test_up_services_healthy_databases_exist(shared):
    env = shared.env(PROD)
    st = env.status()
    assert st.healthy, st.to_dict()
    assert {x.name for x in st.services} == set(shared.manifest.services)
    assert all(x.running and x.healthy for x in st.services), st.to_dict()
    admin = env.conninfo()
    for db, info in tool_db_info(env).items():
        owner = sql.fetch_value(admin, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", [db])
        assert owner == info["user"], (db, owner)
        assert sql.fetch_value(env.conninfo(db), "SELECT current_database()") == db
    assert set(st.databases) == set(shared.manifest.postgres.databases)
    assert _schema(env) == 1 and _rows(env) == SEED_ROWS  # migrated on start, then seeded
    assert env.record.versions == dict(shared.manifest.environments[PROD].versions)


def test_status_is_typed_with_its_fields(shared, backend):
    env = shared.env(PROD)
    st = env.status()
    assert isinstance(st, EnvStatus)
    assert (st.name, st.kind, st.backend) == (PROD, "production", backend)
    assert st.postgres["running"] is True
    assert isinstance(st.postgres["port"], int) and isinstance(st.postgres["major"], int)
    assert st.postgres["port"] == env.ports["postgres"]
    for x in st.services:
        assert isinstance(x, ServiceStatus)
        assert x.version == env.record.versions[x.name] and x.port == env.ports[x.name]
        assert isinstance(x.detail, str)
    assert len(set(env.ports.values())) == len(env.ports)  # one port per service and PostgreSQL
    assert all(isinstance(v, int) and v > 0 for v in st.databases.values())
    d = st.to_dict()
    assert d["healthy"] is True and json.loads(json.dumps(d)) == d
    quick = env.status(probe=False)  # without probes: running, health not asserted
    assert all(x.running for x in quick.services) and quick.postgres["running"]


# == down and destroy (fresh stacks) ===============================================================
def test_down_leaves_nothing_behind(fresh):
    s = fresh()
    env = s.env(PROD)
    st = env.status()
    pids = [x.pid for x in st.services if x.pid]
    ports = dict(env.ports)
    down = env.down()
    assert isinstance(down, EnvDown) and down.environment == PROD, down  # typed, as every backend's

    after = s.env(PROD).status()
    assert not after.postgres["running"] and not after.healthy
    assert not any(x.running for x in after.services), after.to_dict()
    assert [p for p in pids if _alive(p)] == []
    assert _processes_mentioning(s.state.root) == []
    assert {n: h for n, p in ports.items() if (h := holder_of(p))} == {}
    assert lock.holder(s.state, PROD) is None and _lock_free(s.state, PROD)
    assert Journal(s.state, PROD).incomplete() is None
    # down is not destroy: up again finds the data as it was
    up = s.env(PROD).up()
    assert isinstance(up, EnvUp) and up.environment == PROD, up
    again = as_dict(up)
    assert again["created"] is False and _rows(s.env(PROD)) == SEED_ROWS


def test_destroy_leaves_no_files_outside_the_state_dir(fresh, tmp_path_factory):
    # a state dir the database server cannot reach (inside a 0700 dir) with a long path (no room for a
    # socket in it): the places where a backend has to keep things outside the state dir
    hidden = Path(tmp_path_factory.mktemp("hidden"))
    os.chmod(hidden, 0o700)
    deep = hidden / ("d" * 60)
    deep.mkdir()
    before_roots = {r: set(r.iterdir()) if r.is_dir() else set() for r in OUTSIDE_ROOTS}
    s = fresh(base=deep, up=False)
    stack_dir = s.stack.parent
    stack_before = _tree(stack_dir)
    env = s.env(PROD)
    env.up()
    pg_base = s.state.pg_base()
    roots = [*OUTSIDE_ROOTS, pg_base.parent]
    markers = _markers(s)
    while_up = _outside(s, roots, markers)
    env.destroy()

    assert not s.state.env_dir(PROD).exists() and s.state.load_record(PROD) is None
    assert _processes_mentioning(s.state.root) == []
    assert {n: h for n, p in env.ports.items() if (h := holder_of(p))} == {}
    assert not pg_base.exists()
    left = {e for e in _outside(s, roots, markers)
            if e.parent not in before_roots or e not in before_roots[e.parent]}
    assert left == set(), f"left outside the state dir: {sorted(map(str, left))} (while up: {sorted(map(str, while_up))})"
    assert _tree(stack_dir) == stack_before  # nothing written into the stack's own directory
    s.env(PROD).destroy()  # destroying what is gone is a no-op
    assert s.state.env_names() == [] and not s.state.env_dir(PROD).exists()


# == one-off jobs ==================================================================================
def test_run_job_of_a_version(fresh):
    s = fresh()
    env = s.env(PROD)
    before = fingerprint(env)
    up = run_job(env, SERVICE, "migrate", version="2.0", timeout=60)
    assert up.returncode == 0, up.stderr
    assert json.loads(up.stdout.strip().splitlines()[-1]) == {"release": "2.0", "schema": 2}
    assert _schema(env) == 2  # the job of 2.0 ran against this environment's database
    assert env.record.versions[SERVICE] == "1.0"  # a job does not change what the environment runs
    down = run_job(env, SERVICE, "downgrade", version="2.0", timeout=60, to_version="1.0")
    assert down.returncode == 0, down.stderr
    assert json.loads(down.stdout.strip().splitlines()[-1]) == {"from": 2, "to": 1}
    assert fingerprint(env).equal(before)
    failed = run_job(env, SERVICE, "downgrade", timeout=60, to_version="no-such-release")
    assert failed.returncode != 0 and "no-such-release" in failed.stderr  # reported, not raised
    with pytest.raises(CommandFailed, match="declares no sql command"):
        run_job(env, SERVICE, "sql", timeout=60)
    with pytest.raises(UnknownName, match="no version '9.9'"):
        run_job(env, SERVICE, "migrate", version="9.9", timeout=60)
    assert s.env(PROD).status().healthy


def test_run_job_timeout_stops_the_job(fresh):
    s = fresh()
    env = s.env(PROD)
    before = fingerprint(env)
    with sql.connect(env.conninfo(DB), autocommit=False) as blocker:
        blocker.execute("SELECT 1 FROM accounts LIMIT 1")  # holds a lock 2.0's ALTER TABLE waits for
        t0 = time.monotonic()
        with pytest.raises(CommandFailed, match="timed out"):
            run_job(env, SERVICE, "migrate", version="2.0", timeout=2)
        assert time.monotonic() - t0 < 15
        # the job is gone; its server session would wait for the lock, then commit nothing
        waiting = sql.fetch(env.conninfo(), "SELECT pid FROM pg_stat_activity WHERE datname = %s AND "
                            "wait_event_type = 'Lock'", [DB])
        for row in waiting:
            sql.execute(env.conninfo(), "SELECT pg_terminate_backend(%s)", params=[row["pid"]])
        blocker.rollback()
    assert fingerprint(env).equal(before) and _schema(env) == 1


# == restore points ================================================================================
def test_restore_point_create_list_delete(fresh, strategy, strategy_dir):
    s = fresh(base=strategy_dir(strategy))
    env = s.env(PROD)
    before, dbs = fingerprint(env), _databases(env)
    made = as_dict(snapshots.create(env, strategy, label=f"conformance {strategy}"))
    a = made["restore_point"]["id"]

    assert [p.id for p in snapshots.list_points(s.state, PROD)] == [a]
    rp = snapshots.get(s.state, a)
    assert (rp.strategy, rp.env, rp.label, rp.versions) == (strategy, PROD, f"conformance {strategy}",
                                                            env.record.versions)
    assert snapshots.verify(env, rp) == []
    assert fingerprint(env).equal(before)  # taking a restore point changes no data
    assert s.env(PROD).status().healthy  # and leaves the services running
    assert Journal(s.state, PROD).incomplete() is None

    snapshots.delete(env, a)
    assert snapshots.list_points(s.state, PROD) == []
    assert not rp_meta.rp_dir(s.state, a).exists()
    assert _databases(env) == dbs  # nothing of it is left in the cluster
    with pytest.raises(UnknownName):
        snapshots.get(s.state, a)


def test_rollback_after_a_data_change_and_an_upgrade(fresh, strategy, strategy_dir):
    s = fresh(base=strategy_dir(strategy))
    env = s.env(PROD)
    versions = dict(env.record.versions)
    before = fingerprint(env)
    rp_id = as_dict(snapshots.create(env, strategy, label="before the change"))["restore_point"]["id"]
    _change_data(env)
    up = as_dict(upgrades.upgrade(s.env(PROD), {SERVICE: "2.0"}, strategy=strategy))
    assert up["outcome"] == "succeeded", up
    env = s.env(PROD)
    assert env.record.versions[SERVICE] == "2.0" and _schema(env) == 2

    res = as_dict(rollbacks.rollback(env, to=rp_id))
    assert res["verified"] and res["restore_point"] == rp_id
    env = s.env(PROD)
    after = fingerprint(env)
    assert after.equal(before), [str(d) for d in before.diff(after)]
    assert env.record.versions == versions and res["versions"] == versions
    assert env.status().healthy and _schema(env) == 1
    assert Journal(s.state, PROD).incomplete() is None
    assert snapshots.verify(env, snapshots.get(s.state, rp_id)) == []  # still there, reusable


def test_unsupported_strategy_is_a_typed_error(fresh, backend):
    """Every registered strategy the backend does not support is refused with a typed exit-2 error
    naming the strategy and an alternative it supports (and the backend, when the backend lacks a
    capability: ``MissingCapability``); one supported only in some places (``cow``: a reflink
    filesystem) is refused the same way elsewhere; nothing is created or changed.

    TODO(seam): until the seam is merged ``MissingCapability`` is ``BadInput`` here and no strategy
    declares what it requires; ``local`` supports every strategy, so what it refuses is ``cow`` on
    this (non-reflink) temp dir: ``BadInput`` from inside the journaled capture step.
    """
    s = fresh()
    env = s.env(PROD)
    setup = SETUPS[backend]
    anywhere = {n for n, where in setup.strategies.items() if where is None}
    snapshots.get_strategy("clone")  # the built-in strategies are registered on first use
    refused = sorted(n for n in snapshots.STRATEGIES if n not in anywhere)
    before = fingerprint(env)
    for name in refused:
        try:
            made = as_dict(snapshots.create(env, name))
        except (BadInput, StepFailed) as e:
            err = refusal(e)
            assert isinstance(err, BadInput) and err.exit_code == 2, repr(err)
            taken_by = getattr(snapshots.get_strategy(name), "taken_by", None)  # e.g. pg-volume: by pg-major only
            if name not in setup.strategies and not (taken_by and all(env.has(c) for c in snapshots.get_strategy(name).requires)):
                assert isinstance(err, MissingCapability), repr(err)  # the backend cannot, wherever its state dir is
            assert name in err.message, err.message
            if err.details.get("backend") is not None:
                assert err.details["backend"] == backend and repr(backend) in err.message, err.to_dict()
            alternative = err.details.get("alternative") or err.details.get("fallback") or ""
            assert alternative in anywhere and alternative in (err.fix or ""), err.to_dict()
        else:  # e.g. cow where this machine's temp dir makes reflinks: the refusal is not shown here
            snapshots.delete(env, made["restore_point"]["id"])
            assert name in setup.strategies, f"{backend} took a {name} restore point it does not declare"
    with pytest.raises(UnknownName, match="unknown restore-point strategy 'no-such-strategy'") as e:
        snapshots.create(env, "no-such-strategy")
    assert e.value.exit_code == 2 and all(n in (e.value.fix or "") for n in anywhere)
    assert snapshots.list_points(s.state, PROD) == []
    assert fingerprint(env).equal(before) and s.env(PROD).status().healthy
    assert Journal(s.state, PROD).incomplete() is None


# == staging =======================================================================================
def test_staging_from_a_source_is_masked_and_isolated(fresh, backend):
    s = fresh()
    prod = s.env(PROD)
    prod_before = fingerprint(prod)
    made = as_dict(staging.create(s, "stage-c", source=PROD, mask=True))
    assert made["status"] == "ready" and made["mask"] and made["leak_check"]["ok"], made
    st = s.env("stage-c")
    assert (st.kind, st.record.source, st.record.backend) == ("staging", PROD, backend)
    assert st.status().healthy and st.record.versions == prod.record.versions
    assert _rows(st) == _rows(prod) == SEED_ROWS  # production's data, masked
    names = "SELECT name FROM accounts"
    masked = {r["name"] for r in sql.fetch(st.conninfo(DB), names)}
    real = {r["name"] for r in sql.fetch(prod.conninfo(DB), names, read_only=True)}
    assert len(masked) > 1 and not masked & real

    # isolation: its own ports, directories and database endpoint; the guards agree
    assert not set(st.ports.values()) & set(prod.ports.values())
    assert not st.dir.resolve().is_relative_to(prod.dir.resolve())
    assert not prod.dir.resolve().is_relative_to(st.dir.resolve())
    prod_dbs = {(i["host"], i["port"]) for i in tool_db_info(prod).values()}
    assert not {(i["host"], i["port"]) for i in tool_db_info(st).values()} & prod_dbs
    assert isolation.check(st, [prod])["environment"] == "stage-c"
    # a staging record carrying production's backend state (ports, places) is refused
    twin = open_environment(s.manifest, s.state, "stage-twin",
                            prod.record.model_copy(update={"name": "stage-twin", "kind": "staging",
                                                           "source": PROD}))
    with pytest.raises(RefusedToTouchProduction, match="stage-twin"):
        isolation.check(twin, [prod, st])
    creds, theirs = tool_db_info(st)[DB], tool_db_info(prod)[DB]  # staging's credentials do not open production's
    aimed = creds["url"].replace(f"@{creds['host']}:{creds['port']}/", f"@{theirs['host']}:{theirs['port']}/")
    with pytest.raises(PostgresError, match="password authentication failed"):
        with sql.connect(aimed):
            pass

    # real writes in staging, by the tool and by a job of the service's code, do not reach production
    _change_data(st, 7)
    job = run_job(st, SERVICE, "migrate", version="2.0", timeout=60)
    assert job.returncode == 0, job.stderr
    assert _schema(st) == 2 and _rows(st) == SEED_ROWS + 7
    prod = s.env(PROD)
    assert fingerprint(prod).equal(prod_before) and _schema(prod) == 1
    assert prod.status().healthy

    gone = as_dict(staging.destroy(s, "stage-c"))
    assert gone["destroyed"] == "stage-c" and "stage-c" not in s.state.env_names()
    assert s.env(PROD).status().healthy and fingerprint(s.env(PROD)).equal(prod_before)
