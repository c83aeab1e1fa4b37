"""A generated Compose project whose service mounts a second named volume: the first stays bound into the
state dir (copied and swapped like a local data dir), the second is a plain named volume of the engine,
captured by a copy into a restore-point volume and copied back by a rollback (real containers)."""

from __future__ import annotations

import shutil

from .test_adopt import plant, volume_files
from .test_backend import compose_images, leftovers, new_session  # noqa: F401


def test_rollback_restores_a_services_second_volume(compose_images, compose_engine):  # noqa: F811
    from upgrade_infra.operations import rollback, upgrade
    from upgrade_infra.restore import points as snapshots
    from upgrade_infra.restore.fingerprint import fingerprint

    def edit(data):
        data["compose"]["services"]["assistant"]["volumes"] = {"assistant-data": "/data", "assistant-cache": "/cache"}

    s, root = new_session(edit)
    env = s.env("production")
    try:
        env.up(seed_mb=1)
        cache = f"{env.project}_assistant-cache"
        assert cache in leftovers(compose_engine, env.project)["volumes"]
        plant(compose_engine, cache, "before.txt", "in the second volume")
        before, files_before = fingerprint(env), volume_files(compose_engine, cache)
        up = upgrade.upgrade(env, {"assistant": "1.1.0", "automations": "1.1.0"}, strategy="clone", watch_s=0)
        assert up["outcome"] == "succeeded", up
        env = s.env("production")
        rp = snapshots.list_points(s.state, "production")[-1]
        assert set(rp.volumes) == {"assistant-cache"} and rp.volumes["assistant-cache"]["live"] == cache
        assert set(rp.data_dirs) == {"assistant", "automations"}  # the first volumes: bound into the state dir
        assert snapshots.verify(env, rp) == []
        plant(compose_engine, cache, "after.txt", "written after the upgrade")
        rb = rollback.rollback(env)
        assert rb["verified"], rb
        env = s.env("production")
        assert fingerprint(env).equal(before)
        assert volume_files(compose_engine, cache) == files_before
        # a deleted restore point takes its volume copies with it
        copy = rp.volumes["assistant-cache"]["volume"]
        snapshots.delete(env, rp.id)
        assert copy not in {v.name for v in compose_engine.client().volumes.list()}
    finally:
        try:
            client = compose_engine.client()
            ids = [p.id.removeprefix("rp-") for p in snapshots.list_points(s.state)]
            from upgrade_infra.restore import quarantine

            ids += [q["op"] for q in quarantine.list_all(s.state)]
            s.env("production").destroy()
            for v in client.volumes.list():
                if v.name.startswith(("uirp-", "uiq-")) and any(x in v.name for x in ids):
                    v.remove(force=True)
        finally:
            shutil.rmtree(root, ignore_errors=True)
