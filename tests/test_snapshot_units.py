"""Pure parts of restore points: names, retention, argv builders, SQL builders, checksums."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from upgrade_infra.backends.interface import HostPath
from upgrade_infra.backends.local.environment import side_start_argv
from upgrade_infra.backends.local.postgres import PgInstall
from upgrade_infra.backends.pgtools import dump_args, restore_args
from upgrade_infra.core.errors import BadInput, RestorePointError
from upgrade_infra.core.steps import step_names
from upgrade_infra.operations.dr import read_export
from upgrade_infra.operations.upgrade import upgrade_steps
from upgrade_infra.restore import names, quarantine
from upgrade_infra.restore.meta import RestorePoint, checksum_tree, verify_files
from upgrade_infra.restore.ops import prune_plan
from upgrade_infra.stack.manifest import Retention

PG = PgInstall(Path("/pg/bin"), 15, "15.8", "system")


def test_names_fit_postgres_limit():
    db = "a" * 40
    for n in (names.clone_name(db, "rp-1a2b3c4d"), names.spare_name(db, "rp-1a2b3c4d"),
              names.staged_name(db, "op-1a2b3c4d"), names.quarantine_name(db, "op-1a2b3c4d")):
        assert len(n) <= 63 and names.is_ours(n)
    assert names.quarantine_name("assistant", "op-12345678") == "assistant__q_12345678"
    assert not names.is_ours("assistant")


def test_dump_and_restore_argv():
    # one builder for every pg_dump/pg_restore; the program comes from the database handle
    assert dump_args("host=/s dbname=a", Path("/rp/dump/a"), jobs=2) == [
        "-Fd", "-j", "2", "-f", HostPath(Path("/rp/dump/a"), "w"), "-d", "host=/s dbname=a"]
    assert restore_args("dbname=a__r_1", Path("/rp/dump/a"), jobs=2) == [
        "-j", "2", "--exit-on-error", "-d", "dbname=a__r_1", HostPath(Path("/rp/dump/a"), "r")]
    assert [str(a) for a in dump_args("c", Path("/d"), 2)] == ["-Fd", "-j", "2", "-f", "/d", "-d", "c"]
    assert side_start_argv(PG, Path("/q/pgdata"), 45000, Path("/tmp/s"), Path("/tmp/s/l")) == [
        "/pg/bin/pg_ctl", "start", "-D", "/q/pgdata", "-w", "-t", "60", "-l", "/tmp/s/l",
        "-o", "-p 45000 -k /tmp/s -c listen_addresses=''"]


def _rp(i, env="production", age_days=0.0):
    return RestorePoint(id=f"rp-{i:08x}", env=env, strategy="clone", created_at=time.time() - age_days * 86400,
                        versions={}, manifest_sha256="", pg_major=15)


def test_prune_keeps_newest_young_and_protected():
    pts = [_rp(1, age_days=30), _rp(2, age_days=20), _rp(3, age_days=20), _rp(4, age_days=1), _rp(5, age_days=0),
           _rp(6, env="staging-1", age_days=40)]
    plan = prune_plan(pts, Retention(keep_last=2, max_age_days=14), time.time(), protected={"rp-00000002"})
    assert sorted(rp.id for rp, _ in plan) == ["rp-00000001", "rp-00000003"]
    # another environment keeps its own newest
    assert all(rp.env == "production" for rp, _ in plan)


def test_meta_checksum_detects_edits(tmp_path):
    rp = _rp(1)
    rp.checksum = rp.compute_checksum()
    assert rp.compute_checksum() == rp.checksum
    rp.versions["assistant"] = "9.9.9"
    assert rp.compute_checksum() != rp.checksum


def test_file_checksums(tmp_path):
    (tmp_path / "data" / "svc").mkdir(parents=True)
    (tmp_path / "data" / "svc" / "f").write_text("hello")
    sums = checksum_tree(tmp_path, "data")
    assert list(sums) == ["data/svc/f"]
    assert verify_files(tmp_path, sums) == []
    (tmp_path / "data" / "svc" / "f").write_text("hellO")
    assert verify_files(tmp_path, sums) == ["checksum mismatch: data/svc/f"]
    (tmp_path / "data" / "svc" / "f").unlink()
    assert verify_files(tmp_path, sums) == ["missing data/svc/f"]


def test_quarantine_queries():
    assert quarantine.bucket_query("public", "messages", ["id"]).as_string(None) == (
        'SELECT (hashtextextended(t."id"::text, 0) & 1023) AS b, count(*) AS n, '
        'sum(hashtextextended(t."id"::text, 0)) AS s FROM "public"."messages" t GROUP BY 1')
    assert "ROW(t.\"a\", t.\"b\")::text" in quarantine.keys_query("public", "x", ["a", "b"]).as_string(None)
    assert quarantine.select_new("public", "t", None) == 'SELECT * FROM "public"."t"'
    assert quarantine.select_new("public", "t", ["id"]) == 'SELECT t.* FROM "public"."t" t JOIN k ON t."id"::text = k.k'


def test_upgrade_steps_have_inverses_where_they_change_things():
    steps = {s.name: s for s in upgrade_steps("clone")}
    assert step_names(upgrade_steps("clone"))[:3] == ["preflight", "stop_services", "restore_point"]
    assert steps["stop_services"].undo is not None and steps["restore_point"].undo is not None


def test_release_order_for_the_downgrade_guard():
    from upgrade_infra.operations.migrated import is_older
    from upgrade_infra.stack.manifest import load_manifest

    m = load_manifest(Path(__file__).parent / "data" / "ledger" / "stack.yaml")
    assert is_older(m, "ledger", "1.0", "2.0") and not is_older(m, "ledger", "2.0", "1.0")
    assert not is_older(m, "ledger", "2.0", "2.0.0")  # 2.0 == 2.0.0
    assert not is_older(m, "ledger", "linger", "2.0")  # not numbers: declaration order (linger after 2.0)
    assert is_older(m, "ledger", "2.0", "linger")


def test_an_exports_metadata_is_checked_as_every_restore_points_is(tmp_path):
    exp = tmp_path / "rp-1a2b3c4d"
    exp.mkdir()
    with pytest.raises(BadInput, match="not an exported restore point"):
        read_export(exp)
    (exp / "meta.json").write_text("{not json")
    with pytest.raises(RestorePointError, match="not JSON"):  # was a JSONDecodeError traceback
        read_export(exp)
    rp = RestorePoint(id=exp.name, env="production", strategy="dump", created_at=time.time(), versions={},
                      manifest_sha256="0" * 64, pg_major=15)
    rp.checksum = rp.compute_checksum()
    (exp / "meta.json").write_text(json.dumps({**rp.model_dump(), "data_dirs": {"svc": "../out"}}))
    with pytest.raises(BadInput, match="is invalid"):  # a path outside the restore point: bad input
        read_export(exp)
    (exp / "meta.json").write_text(json.dumps({**rp.model_dump(), "env": "staging"}))
    with pytest.raises(RestorePointError, match="checksum mismatch"):
        read_export(exp)
    (exp / "meta.json").write_text(json.dumps(rp.model_dump()))
    assert read_export(exp) == rp
