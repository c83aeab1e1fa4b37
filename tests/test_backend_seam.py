"""The backend seam: capabilities a backend declares, strategies and sync methods that require them,
and environment records from before ``backend_state``.

``BareEnvironment`` is a real backend (the local one, registered under another name) that declares
no optional capability: no physical data directory, no service data on the host, no scratch servers,
as a container backend might start out. Nothing here starts PostgreSQL.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from upgrade_infra.backends import open_environment, register_backend
from upgrade_infra.backends.interface import (
    Database,
    Endpoint,
    MissingCapability,
    PhysicalDataDir,
    ScratchServers,
    ServiceData,
)
from upgrade_infra.backends.local.environment import LocalEnvironment
from upgrade_infra.core.errors import EXIT_BAD_INPUT, BadInput
from upgrade_infra.core.state import EnvRecord, StateDir
from upgrade_infra.operations.session import Session
from upgrade_infra.restore import datadirs
from upgrade_infra.restore import points as snapshots
from upgrade_infra.staging import sync

from .conftest import write_stack


@register_backend("bare-test")
class BareEnvironment(LocalEnvironment):
    """The local backend without any optional capability."""

    capabilities = frozenset()


@pytest.fixture(scope="module")
def stack():
    root = Path(tempfile.mkdtemp(prefix="uinfra-seam-"))
    yield Session(write_stack(root / "stack"), root / "state")
    shutil.rmtree(root, ignore_errors=True)


def _bare(s: Session, name: str = "bare", kind: str = "production") -> BareEnvironment:
    m = s.manifest
    rec = EnvRecord(name=name, kind=kind, backend="bare-test", versions=dict(m.environments["production"].versions),
                    created_at=time.time(),
                    backend_state=BareEnvironment.new_backend_state(m, s.state, name, kind="staging"))
    env = open_environment(m, s.state, name, rec)
    assert isinstance(env, BareEnvironment)
    return env


@pytest.mark.parametrize("strategy, alternative", [("fs", "clone"), ("cow", "clone")])
def test_a_restore_point_strategy_needing_a_missing_capability_is_refused_with_exit_2(stack, strategy, alternative):
    env = _bare(stack)
    with pytest.raises(MissingCapability) as e:
        snapshots.strategy_choice(env, strategy)
    err = e.value
    assert err.exit_code == EXIT_BAD_INPUT == 2 and isinstance(err, BadInput)
    assert f"strategy {strategy!r}" in err.message and "'bare-test' backend" in err.message
    assert "physical PostgreSQL data directory" in err.message
    assert err.fix == f"use {alternative!r} instead"
    assert err.details["strategy"] == strategy and err.details["backend"] == "bare-test"
    assert err.details["alternative"] == alternative
    assert err.to_dict()["exit_code"] == 2


def test_strategies_that_need_nothing_pass_and_auto_falls_back_to_clone(stack):
    env = _bare(stack)
    assert snapshots.strategy_choice(env, "clone")[0] == "clone"
    assert snapshots.strategy_choice(env, "dump")[0] == "dump"
    chosen, why = snapshots.strategy_choice(env, "auto")
    assert chosen == "clone" and "'bare-test' backend" in why


@pytest.mark.parametrize("method", ["physical", "cow"])
def test_a_sync_method_needing_a_missing_capability_is_refused_naming_dump(stack, method):
    env = _bare(stack, "bare-stg", kind="staging")
    with pytest.raises(MissingCapability) as e:
        sync.choose(env, method)
    assert e.value.exit_code == 2
    assert f"sync method {method!r}" in e.value.message and "'bare-test' backend" in e.value.message
    assert e.value.details["alternative"] == "dump"


def test_the_default_sync_from_a_staging_source_without_a_data_dir_is_dump(stack):
    env = _bare(stack, "bare-stg2", kind="staging")
    with pytest.raises(BadInput) as e:  # dump is chosen; the source is not running (never created)
        sync.choose(env)
    assert not isinstance(e.value, MissingCapability) and e.value.details["strategy"] == "dump"


def test_asking_a_backend_for_a_capability_it_lacks(stack):
    env = _bare(stack)
    for cap in (PhysicalDataDir, ServiceData, ScratchServers):
        assert not env.has(cap)
        with pytest.raises(MissingCapability, match=f"does not offer {cap.title}"):
            env.capability(cap)
    with pytest.raises(MissingCapability):
        datadirs.live(env, next(iter(datadirs.services_with_data(env))))
    local = stack.env("production")
    assert all(local.has(c) for c in (PhysicalDataDir, ServiceData, ScratchServers))
    assert isinstance(local.capability(PhysicalDataDir), PhysicalDataDir)


def test_the_tool_and_the_services_each_get_their_own_addresses(stack):
    env = stack.env("production")
    assert isinstance(env.database, Database)
    ep = env.endpoint("assistant")
    assert isinstance(ep, Endpoint) and ep.url == env.service_url("assistant") == f"http://{ep.host}:{ep.port}"
    ctx = env.service_context("automations")
    assert ctx["services"]["assistant"]["url"] == env.service_address("assistant").url
    assert ctx["db"]["assistant"]["port"] == env.database.service_endpoint().port
    assert env.db_info("tool")["assistant"]["host"] == env.database.endpoint().host


# -- records written before backend_state -------------------------------------------------------------
OLD_RECORD = {
    "name": "production", "kind": "production", "backend": "local", "port_base": 27100,
    "versions": {"assistant": "1.0.0", "automations": "1.0.0"}, "created_at": 1764547200.0, "source": None,
    "ttl_s": None, "synced_at": None, "seeded": True,
    "processes": {"assistant": {"pid": 4242, "create_time": 1764547201.5}},
}


def test_an_old_env_record_still_loads_into_backend_state(tmp_path):
    state = StateDir(tmp_path / "state").ensure()
    path = state.env_record_path("production")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(OLD_RECORD))
    rec = state.load_record("production")
    assert rec is not None and rec.seeded and rec.versions == OLD_RECORD["versions"]
    assert rec.backend_state == {"port_base": 27100, "processes": OLD_RECORD["processes"]}
    state.save_record(rec)  # written back in the new shape, and still loads
    saved = json.loads(path.read_text())
    assert "port_base" not in saved and "processes" not in saved
    assert saved["backend_state"]["port_base"] == 27100
    assert state.load_record("production") == rec


def test_an_old_record_opens_on_its_port_block(stack):
    rec = EnvRecord.model_validate({**OLD_RECORD, "port_base": 27300, "processes": {}})
    env = open_environment(stack.manifest, stack.state, "production", rec)
    assert env.ports["postgres"] == 27300 and env.placement() == {"port_base": 27300}
    assert env.ports["assistant"] == 27300 + stack.manifest.services["assistant"].port


# -- client tools through the database handle ---------------------------------------------------------
def test_client_tools_run_through_the_database_handle(pg_cluster, tmp_path):
    """The one argv builder, a directory dump and restore, and a dump streamed to a host file and back."""
    from upgrade_infra.backends import pgtools
    from upgrade_infra.backends.local.environment import LocalDatabase
    from upgrade_infra.core import sql

    db = LocalDatabase(pg_cluster.cluster)
    pg_cluster.create_database("seam_src")
    sql.execute(db.conninfo("seam_src"), "CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 500) g")
    pgtools.dump(db, "seam_src", tmp_path / "d")
    pg_cluster.create_database("seam_dir")
    pgtools.restore(db, "seam_dir", tmp_path / "d")
    assert sql.fetch_value(db.conninfo("seam_dir"), "SELECT count(*) FROM t") == 500
    out = tmp_path / "s.dump"
    db.run_tool("pg_dump", ["-Fc", "-d", db.tool_conninfo("seam_src")], stdout_path=out)
    assert out.stat().st_size > 0 and oct(out.stat().st_mode & 0o777) == "0o600"
    pg_cluster.create_database("seam_stream")
    db.run_tool("pg_restore", ["-d", db.tool_conninfo("seam_stream")], stdin_path=out)
    assert sql.fetch_value(db.conninfo("seam_stream"), "SELECT count(*) FROM t") == 500
    assert db.major == pg_cluster.cluster.install.major and db.tool_command("psql", ["x"])[-1] == "x"
