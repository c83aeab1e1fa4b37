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
        from upgrade_infra.restore import quarantine

        quarantine.delete(env, rb["op"])  # what `snapshot prune` does to an old quarantine
        assert new_volume not in volumes_of(compose_engine, env.project)
        assert old_volume in volumes_of(compose_engine, env.project) and env.status().healthy
        project = env.project
    assert leftovers(compose_engine, project) == {"containers": [], "volumes": [], "networks": []}


@pytest.fixture(scope="module")
def no_vector_image(pg_images, compose_engine):
    """A real PostgreSQL 16 image without pgvector: built FROM upgrade-infra/postgres:16 with the vector
    extension's files removed (the legacy builder: FROM a local tag, no pull)."""
    import io

    client = compose_engine.client()
    dockerfile = ("FROM upgrade-infra/postgres:16\n"
                  "RUN rm -f \"$(pg_config --sharedir)\"/extension/vector* \"$(pg_config --pkglibdir)\"/vector.so\n")
    client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=NO_VECTOR, rm=True, forcerm=True)
    yield NO_VECTOR
    client.images.remove(NO_VECTOR, force=True)


def snapshot_of(s, engine) -> dict:
    """What must not change when the upgrade is refused: containers (by ID), volumes, restore points,
    journal, the environment record."""
    from upgrade_infra.core.journal import Journal
    from upgrade_infra.restore import points

    env = s.env("production")
    left = leftovers(engine, env.project)
    client = engine.client()
    return {"containers": sorted((n, client.containers.get(n).id) for n in left["containers"]),
            "volumes": sorted(left["volumes"]), "restore_points": [p.id for p in points.list_points(s.state)],
            "journal": len(Journal(s.state, "production").records()), "record": s.state.load_record("production")}


def test_missing_extension_is_refused_with_nothing_changed(no_vector_image, compose_engine):
    from upgrade_infra.restore.fingerprint import fingerprint

    with production() as s:
        env = s.env("production")
        use_pgvector(env)
        before, state = fingerprint(env), snapshot_of(s, compose_engine)
        r = cli(s, "upgrade", "production", "--postgres", no_vector_image)
        print(f"\nrefused: {r.stderr.strip()}")
        assert r.returncode == 2, r.stderr + r.stdout
        err = json.loads(r.stdout)
        assert err["error"] == "ExtensionsMissing"
        assert "lacks extensions" in err["message"] and "assistant: vector" in err["message"]
        assert "automations" not in err["message"]  # only the database that uses it is named
        assert "nothing was changed" in err["message"]
        # an image that is not on the engine: named, exit 2, nothing pulled or changed either
        r = cli(s, "upgrade", "production", "--postgres", "17")
        assert r.returncode == 2 and "upgrade-infra/postgres:17" in r.stdout, r.stdout
        # the same major, and an older one: refused
        assert cli(s, "upgrade", "production", "--postgres", "15").returncode == 2
        assert snapshot_of(s, compose_engine) == state
        assert not [c for c in compose_engine.client().containers.list(all=True)
                    if c.labels.get("org.upgrade-infra.helper") in ("pg-probe", "pg-major")]
        env = s.env("production")
        assert env.status().healthy and env.status().postgres["major"] == 15
        assert fingerprint(env).equal(before)


@pytest.mark.parametrize("step", ["load", "start_services"])
def test_kill_9_at_a_step_boundary_then_resume(pg_images, compose_engine, step):
    """Killed (SIGKILL) as step ``step`` begins: before the switch (``load``) resume undoes the upgrade;
    after it (``start_services``) resume rolls back to the old volume. Either way the data is as before."""
    from upgrade_infra.core.journal import Journal
    from upgrade_infra.restore.fingerprint import fingerprint

    with production() as s:
        env = s.env("production")
        use_pgvector(env)
        before, old_volume = fingerprint(env), env.pg_volume
        r = cli(s, "upgrade", "production", "--postgres", "16", "--watch", "0", fault=f"pg-major.{step}")
        assert r.returncode == -9, r.stderr + r.stdout
        assert Journal(s.state, "production").incomplete() is not None
        r = cli(s, "upgrade", "production", "--postgres", "16")  # refused until resumed
        assert r.returncode == 2 and "resume" in r.stdout, r.stdout
        t0 = time.monotonic()
        r = cli(s, "resume", "production")
        assert r.returncode == 0, r.stderr + r.stdout
        action = json.loads(r.stdout)["recovered"][0]["action"]
        print(f"\nkilled at {step}: resume {action} in {time.monotonic() - t0:.1f}s")
        assert action == ("undone" if step == "load" else "rolled back")
        env = s.env("production")
        assert Journal(s.state, "production").incomplete() is None
        st = env.status()
        assert st.healthy and st.postgres["major"] == 15 and env.pg_volume == old_volume
        after = fingerprint(env)
        assert after.equal(before), [str(d) for d in before.diff(after)]
        vols = volumes_of(compose_engine, env.project)
        new_volumes = {v for v in vols if v.startswith(old_volume + "-")}
        assert len(new_volumes) == (0 if step == "load" else 1)  # undone: removed; rolled back: quarantined
        assert not [c for c in compose_engine.client().containers.list(all=True)
                    if c.labels.get("org.upgrade-infra.helper") in ("pg-probe", "pg-major", "pg-side")]


def test_staging_rehearsal_leaves_production_untouched(pg_images, compose_engine):
    from upgrade_infra.restore.fingerprint import fingerprint

    with production() as s:
        env = s.env("production")
        use_pgvector(env)
        r = cli(s, "stage", "create", "staging")
        assert r.returncode == 0, r.stderr + r.stdout
        prod_before = fingerprint(s.env("production"))
        client = compose_engine.client()
        prod_containers = {c.name: c.id for c in client.containers.list(
            filters={"label": f"com.docker.compose.project={env.project}"})}
        staging_before = fingerprint(s.env("staging"))
        t0 = time.monotonic()
        r = cli(s, "upgrade", "staging", "--postgres", "16", "--watch", "0")
        assert r.returncode == 0, r.stderr + r.stdout
        print(f"\nrehearsal on staging: {json.loads(r.stdout)['total_s']}s (wall {time.monotonic() - t0:.1f}s)")
        stg = s.env("staging")
        assert stg.status().healthy and stg.status().postgres["major"] == 16
        assert fingerprint(stg).equal(staging_before)
        assert status_major(cli(s, "status"), "staging") == 16
        assert status_major(cli(s, "status"), "production") == 15
        prod = s.env("production")
        assert prod.status().healthy and prod.pg_volume == env.pg_volume
        assert {c.name: c.id for c in client.containers.list(
            filters={"label": f"com.docker.compose.project={env.project}"})} == prod_containers
        assert fingerprint(prod).equal(prod_before)


def test_local_backend_is_refused(tmp_path):
    """No engine needed: the local backend has no side-by-side servers; exit 2 naming the compose backend."""
    from pathlib import Path

    stack = Path(__file__).resolve().parents[2] / "examples" / "pa-stack" / "stack.yaml"
    r = subprocess.run([sys.executable, "-m", "upgrade_infra", "--stack", str(stack), "--state-dir",
                        str(tmp_path / "state"), "--json", "upgrade", "production", "--postgres", "16"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    err = json.loads(r.stdout)
    assert err["error"] == "NotCompose" and "'local' backend" in err["message"] and "compose" in err["fix"]
