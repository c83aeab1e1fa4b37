"""PostgreSQL major upgrade under Compose (``upgrade ENV --postgres 16``), on real containers: the reference
Compose stack's production with pgvector in use goes 15 -> 16 side by side into a new volume, and back
with ``rollback``; the extension check refuses an image without pgvector with nothing changed; a kill -9
at step boundaries is finished by ``resume``; the rehearsal on staging leaves production untouched.

Each test brings up its own production (seeded small) and destroys it. Engine and ports as the other
Compose tests (``UPGRADE_INFRA_TEST_ENGINE``, ``UPGRADE_INFRA_TEST_PORTS``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest

from .test_backend import leftovers, new_session

SEED_MB = float(os.environ.get("UPGRADE_INFRA_TEST_SEED_MB", "4"))
NO_VECTOR = "upgrade-infra/postgres:16-novector"
VECTOR_ROWS = 500


@pytest.fixture(scope="module")
def compose_engine(engine):
    old = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = engine.host
    yield engine
    if old is None:
        os.environ.pop("DOCKER_HOST", None)
    else:
        os.environ["DOCKER_HOST"] = old


@pytest.fixture(scope="module")
def pg_images(images, compose_engine):
    assert "upgrade-infra/postgres:16" in images and "upgrade-infra/postgres:15" in images
    return images


@contextmanager
def production(**kw):
    """A fresh production of the reference Compose stack, up and seeded; destroyed (with every volume of
    its project) at the end."""
    s, root = new_session(kw.get("edit"))
    try:
        env = s.env("production")
        env.up(seed_mb=SEED_MB)
        yield s
    finally:
        try:
            for name in ("staging", "production"):
                if s.state.load_record(name) is not None:
                    s.env(name).destroy()
        finally:
            shutil.rmtree(root, ignore_errors=True)


def use_pgvector(env) -> None:
    """pgvector in use in the assistant's database: the extension, a vector column, rows."""
    from upgrade_infra.core import sql

    sql.execute(env.conninfo("assistant"), "CREATE EXTENSION IF NOT EXISTS vector",
                "CREATE TABLE IF NOT EXISTS embeddings (id int PRIMARY KEY, doc text NOT NULL, "
                "embedding vector(3) NOT NULL)",
                f"INSERT INTO embeddings SELECT i, 'doc ' || i, ARRAY[i, i * 0.5, -i]::vector(3) "
                f"FROM generate_series(1, {VECTOR_ROWS}) i",
                "CREATE INDEX IF NOT EXISTS embeddings_l2 ON embeddings USING hnsw (embedding vector_l2_ops)")


def cli(s, *args: str, fault: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "UPGRADE_INFRA_FAULT"}
    if fault:
        env["UPGRADE_INFRA_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "upgrade_infra", "--stack", str(s.stack), "--state-dir",
                           str(s.state.root), "--json", *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


def status_major(r: subprocess.CompletedProcess, env: str = "production") -> int:
    """The major ``upgrade-infra --json status`` reports for ``env``."""
    assert r.returncode == 0, r.stderr
    return next(e for e in json.loads(r.stdout)["environments"] if e["name"] == env)["postgres"]["major"]


def volumes_of(engine, project: str) -> set[str]:
    return set(leftovers(engine, project)["volumes"])


def test_major_upgrade_15_to_16_with_pgvector_then_rollback(pg_images, compose_engine):
    from upgrade_infra.core import sql
    from upgrade_infra.restore.fingerprint import fingerprint

    with production() as s:
        env = s.env("production")
        use_pgvector(env)
        before = fingerprint(env)
        old_volume = env.pg_volume
        assert env.status().postgres["major"] == 15
        t0 = time.monotonic()
        r = cli(s, "upgrade", "production", "--postgres", "16", "--watch", "0")
        wall = time.monotonic() - t0
        assert r.returncode == 0, r.stderr + r.stdout
        res = json.loads(r.stdout)
        steps = {t["step"]: t["duration_s"] for t in res["steps"]}
        print(f"\nPostgreSQL 15 -> 16 (compose, seed {SEED_MB:g} MB + pgvector): total {res['total_s']}s "
              f"(CLI wall {wall:.1f}s), downtime {res['downtime_s']}s; steps {steps}")
        assert res["outcome"] == "succeeded" and res["to_versions"] == {"postgres": "16"}
        env = s.env("production")
        st = env.status()
        assert st.healthy, st.to_dict()
        assert st.postgres["major"] == 16 and st.postgres["image"] == "upgrade-infra/postgres:16"
        new_volume = st.postgres["volume"]
        assert new_volume != old_volume
        assert status_major(cli(s, "status")) == 16
        after = fingerprint(env)
        assert after.equal(before), [str(d) for d in before.diff(after)]
        assert after.postgres.startswith("16")
        assert sql.fetch_value(env.conninfo("assistant"),
                               "SELECT extversion FROM pg_extension WHERE extname = 'vector'") == "0.8.0"
        nearest = sql.fetch_value(env.conninfo("assistant"),
                                  "SELECT id FROM embeddings ORDER BY embedding <-> '[7, 3.5, -7]' LIMIT 1")
        assert nearest == 7
        # the old volume is kept, untouched, as the restore point
        assert {old_volume, env.pg_volume} <= volumes_of(compose_engine, env.project)
        from upgrade_infra.restore import points

        rp = points.get(s.state, res["restore_point"])
        assert rp.strategy == "pg-volume" and rp.pg_major == 15
        assert points.verify(env, rp) == []

        # rollback: back to 15, on the old volume, the data as it was
        t0 = time.monotonic()
        r = cli(s, "rollback", "production")
        assert r.returncode == 0, r.stderr + r.stdout
        rb = json.loads(r.stdout)
        print(f"rollback 16 -> 15: budgeted {rb['total_s']}s, wall {time.monotonic() - t0:.1f}s; steps "
              + ", ".join(f"{t['step']} {t['duration_s']}" for t in rb["steps"]))
        assert rb["verified"]
        env = s.env("production")
        st = env.status()
        assert st.healthy and st.postgres["major"] == 15 and st.postgres["volume"] == old_volume
        assert st.postgres["image"] == "upgrade-infra/postgres:15"
        back = fingerprint(env)
        assert back.equal(before), [str(d) for d in before.diff(back)]
        assert back.postgres.startswith("15")
        # the 16 volume is in the quarantine, and the used restore point says it is used up
        q = rb["quarantine"]
        assert q["where"] == new_volume and new_volume in volumes_of(compose_engine, env.project)
        assert any("live one" in p for p in points.verify(env, rp))
        project = env.project
    assert leftovers(compose_engine, project) == {"containers": [], "volumes": [], "networks": []}
