"""The locally built images: idempotent, labelled, PostgreSQL as the official image behaves (real engine)."""

from __future__ import annotations

import time

import pytest

from upgrade_infra.backends.compose.images import (
    BASE_TAG,
    LABEL_INPUTS,
    LABEL_PGVECTOR,
    LABEL_RELEASE,
    LABEL_VERSION,
    build_all,
)

from .conftest import COMPOSE_DIR

RELEASES = ["1.0.0", "1.1.0", "1.2.0", "1.1.0-lossy", "1.1.0-locking"]


def test_every_image_is_there_and_labelled(engine, images):
    client = engine.client()
    for tag in [BASE_TAG, "upgrade-infra/postgres:15", "upgrade-infra/postgres:16"]:
        assert client.images.get(tag).labels[LABEL_INPUTS] == images[tag].inputs
    for service in ("assistant", "automations"):
        for release in RELEASES:
            img = client.images.get(f"upgrade-infra/pa-{service}:{release}")
            assert img.labels[LABEL_RELEASE] == release and img.labels[LABEL_VERSION] == release
            cmd = img.attrs["Config"]["Cmd"]
            assert cmd[:3] == ["python3", "-m", f"pa_apps.{service}"]
            assert cmd[cmd.index("--release") + 1] == release and "0.0.0.0" in cmd
            assert img.attrs["Config"]["User"] == "pa"


def test_a_second_build_skips_everything(engine, images):
    t0 = time.monotonic()
    again = build_all(engine, COMPOSE_DIR)
    took = time.monotonic() - t0
    assert all(b.skipped for b in again), [b.tag for b in again if not b.skipped]
    assert {b.tag: b.image_id for b in again} == {t: b.image_id for t, b in images.items()}
    assert took < 10, took


def _wait_ready(container, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code, _ = container.exec_run(["pg_isready", "-h", "127.0.0.1", "-q"])
        if code == 0:
            return
        container.reload()
        assert container.status == "running", container.logs(tail=20).decode()
        time.sleep(0.3)
    raise AssertionError(container.logs(tail=20).decode())


@pytest.mark.parametrize("major", [15, 16])
def test_postgres_image_initialises_like_the_official_one(engine, images, major):
    client = engine.client()
    c = client.containers.run(f"upgrade-infra/postgres:{major}", detach=True, labels={"uixt": "pg"},
                              environment={"POSTGRES_USER": "admin", "POSTGRES_PASSWORD": "pw-only-here",
                                           "POSTGRES_DB": "app"})
    try:
        _wait_ready(c)

        def psql(sql, user="postgres", env=None):
            code, out = c.exec_run(["psql", "-h", "127.0.0.1", "-U", "admin", "-d", "app", "-Atc", sql],
                                   user=user, environment=env or {"PGPASSWORD": "pw-only-here"})
            return code, out.decode()

        code, out = psql("SHOW server_version")
        assert code == 0 and out.startswith(str(major)), out
        code, out = psql("CREATE EXTENSION vector; SELECT '[1,2]'::vector <-> '[2,3]'")
        assert code == 0 and out.strip().endswith("1.4142135623730951"), out
        code, out = psql("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        assert out.strip() == client.images.get(f"upgrade-infra/postgres:{major}").labels[LABEL_PGVECTOR], out
        # an HNSW index (pgvector >= 0.5) and halfvec (>= 0.7): both majors have the same, current pgvector
        code, out = psql("CREATE TABLE t (v vector(2)); CREATE INDEX ON t USING hnsw (v vector_l2_ops); "
                         "SELECT '[1,2]'::halfvec(2)")
        assert code == 0, out
        code, out = psql("SHOW listen_addresses")
        assert out.strip() == "*"
        code, out = psql("SELECT 1", env={"PGPASSWORD": "wrong"})
        assert code != 0 and "password authentication failed" in out
        code, uid = c.exec_run(["sh", "-c", "awk '/^Uid/ {print $2}' /proc/1/status; id -u postgres"])
        first, second = uid.decode().split()
        assert first == second != "0", "PostgreSQL must run as postgres, not root"
    finally:
        c.remove(force=True, v=True)


def test_postgres_image_refuses_an_empty_password(engine, images):
    c = engine.client().containers.create("upgrade-infra/postgres:15", environment={"POSTGRES_USER": "x"})
    try:
        c.start()
        assert c.wait(timeout=30)["StatusCode"] == 1
        assert "POSTGRES_PASSWORD is not set" in c.logs().decode()
    finally:
        c.remove(force=True, v=True)


def test_both_postgres_images_carry_the_same_pgvector(engine, images):
    """The major-upgrade extension check compares them: 15 -> 16 must not change pgvector's version."""
    client = engine.client()
    versions = {m: client.images.get(f"upgrade-infra/postgres:{m}").labels.get(LABEL_PGVECTOR) for m in (15, 16)}
    assert versions[15] and versions[15] == versions[16], versions
    for major in (15, 16):
        c = client.containers.create(f"upgrade-infra/postgres:{major}",
                                     ["sh", "-c", "cat $(find /usr -name vector.control -path '*extension*')"])
        try:  # created and removed with its anonymous data volume (remove=True of run() would keep it)
            c.start()
            assert c.wait(timeout=60)["StatusCode"] == 0
            out = c.logs().decode()
        finally:
            c.remove(force=True, v=True)
        assert f"default_version = '{versions[major]}'" in out, (major, out)
