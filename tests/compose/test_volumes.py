"""Named volumes and the helper-container copy (real engine)."""

from __future__ import annotations

import secrets

import pytest

from upgrade_infra.backends.compose.driver import VolumeError
from upgrade_infra.backends.compose.images import BASE_TAG

SIZE_MB = 256


@pytest.fixture
def volumes(driver):
    made: list[str] = []

    def name(prefix: str) -> str:
        made.append(f"uixt-{prefix}-{secrets.token_hex(3)}")
        return made[-1]

    yield name
    for v in made:
        driver.remove_volume(v)


def _run(engine, script: str, mounts: dict[str, str]) -> str:
    c = engine.client().containers.create(BASE_TAG, ["sh", "-c", script], network_disabled=True,
                                          volumes={v: {"bind": p, "mode": "rw"} for v, p in mounts.items()})
    try:
        c.start()
        assert c.wait(timeout=600)["StatusCode"] == 0, c.logs().decode()
        return c.logs().decode()
    finally:
        c.remove(force=True)


def test_volume_create_labels_exists_remove(driver, volumes):
    v = volumes("lab")
    assert not driver.volume_exists(v)
    driver.create_volume(v, {"org.upgrade-infra.restore-point": "rp-1"})
    assert driver.volume_exists(v)
    assert driver.volume_labels(v) == {"org.upgrade-infra.restore-point": "rp-1"}
    with pytest.raises(VolumeError):
        driver.create_volume(v)
    assert driver.remove_volume(v) is True
    assert not driver.volume_exists(v) and driver.remove_volume(v) is False


def test_copy_volume_is_exact_and_measured(driver, engine, images, volumes):
    src, dst = volumes("src"), volumes("dst")
    driver.create_volume(src)
    _run(engine, f"head -c {SIZE_MB}M /dev/urandom > /v/blob && mkdir -p /v/d/e && echo hi > /v/d/e/f "
                 "&& chown -R 999:999 /v/d && chmod 640 /v/d/e/f && ln -s d/e/f /v/link", {src: "/v"})
    copy = driver.copy_volume(src, dst, image=BASE_TAG, labels={"org.upgrade-infra.copy-of": src})
    assert copy.bytes >= SIZE_MB * 2**20
    print(f"volume copy: {copy.bytes / 1e6:.0f} MB in {copy.seconds:.2f}s = {copy.mb_per_s} MB/s")
    assert driver.volume_labels(dst) == {"org.upgrade-infra.copy-of": src}
    listing = "cd {0} && find . -printf '%p %U:%G %m %s %l\\n' | sort && sha256sum blob d/e/f"
    assert _run(engine, listing.format("/a"), {src: "/a"}) == _run(engine, listing.format("/b"), {dst: "/b"})
    helpers = engine.client().containers.list(all=True, filters={"label": "org.upgrade-infra.helper"})
    assert helpers == []


def test_copy_refuses_a_non_empty_target(driver, engine, images, volumes):
    src, dst = volumes("src"), volumes("dst")
    driver.create_volume(src)
    driver.create_volume(dst)
    _run(engine, "echo keep > /t/precious", {dst: "/t"})
    with pytest.raises(VolumeError) as e:
        driver.copy_volume(src, dst, image=BASE_TAG)
    assert "not empty" in e.value.message
    assert _run(engine, "cat /t/precious", {dst: "/t"}).strip() == "keep"
    with pytest.raises(VolumeError):
        driver.copy_volume(volumes("missing"), dst, image=BASE_TAG)


def test_copy_with_an_image_that_declares_a_volume_leaves_no_anonymous_volume(driver, engine, images, volumes):
    """The PostgreSQL image declares VOLUME /var/lib/postgresql/data: a helper container of it made an
    anonymous volume that outlived it (adopted projects copy their volumes with that image)."""
    src, dst = volumes("src"), volumes("dst")
    driver.create_volume(src)
    _run(engine, "echo hi > /v/f", {src: "/v"})
    before = {v.name for v in engine.client().volumes.list()}
    driver.copy_volume(src, dst, image="upgrade-infra/postgres:15")
    driver.copy_volume(src, dst, image="upgrade-infra/postgres:15", clear=True)
    assert {v.name for v in engine.client().volumes.list()} - before == {dst}
    assert _run(engine, "ls -A /v", {dst: "/v"}).split() == ["f"]
