"""Finding an engine, and the private dockerd (real engines, no mocks)."""

from __future__ import annotations

import json
import time

import pytest

from upgrade_infra.backends.compose.engine import (
    DEFAULT_SOCKET,
    EngineUnreachable,
    _processes_under,
    find_engine,
    private_paths,
    start_private_engine,
)
from upgrade_infra.core import runner


def test_no_engine_names_how_to_start_one(tmp_path):
    with pytest.raises(EngineUnreachable) as e:
        find_engine({"DOCKER_HOST": f"unix://{tmp_path}/nobody.sock"}, timeout=1)
    assert "nobody.sock" in e.value.message
    assert "dockerd" in e.value.fix and "DOCKER_HOST" in e.value.fix and "docker.io" in e.value.fix
    assert e.value.exit_code == 2


def test_find_engine_follows_docker_host(engine):
    found = find_engine({"DOCKER_HOST": engine.host})
    assert found.host == engine.host and found.version and not found.private


def test_private_engine_keeps_to_its_own_dirs(engine):
    assert engine.host != f"unix://{DEFAULT_SOCKET}"
    info = engine.client().info()
    assert info["DockerRootDir"] == str(engine.root / engine.name / "data")
    assert engine.pidfile.exists() and engine.host.startswith("unix:///run/upgrade-infra-docker/")
    assert engine.start_seconds is not None and engine.start_seconds < 30
    bridge = engine.client().networks.get("bridge").attrs
    assert bridge["Options"]["com.docker.network.bridge.name"] == engine.bridge


def test_a_second_engine_side_by_side_then_nothing_left(engine, tmp_path):
    """Two private daemons at once (distinct bridge and pool); the second one's stop leaves no process,
    bridge, socket or pid file."""
    root = tmp_path / "engines"
    t0 = time.monotonic()
    second = start_private_engine(root, "uixt2", "172.31.252.1/24")
    try:
        assert second.start_seconds < 30, second.start_seconds
        print(f"second engine: start {second.start_seconds}s (call {time.monotonic() - t0:.2f}s)")
        assert engine.ping() and second.ping()
        addrs = json.loads(runner.run(["ip", "-j", "addr", "show", "dev", "uix-uixt2"]).stdout)
        assert any(a["local"] == "172.31.252.1" for a in addrs[0]["addr_info"])
        net = second.client().networks.create("uixt-pool-check")
        try:
            subnet = net.attrs["IPAM"]["Config"][0]["Subnet"]
            assert subnet.startswith("10.252."), subnet
        finally:
            net.remove()
        assert engine.ping()
    finally:
        how = second.stop()
    paths = private_paths(root, "uixt2")
    assert how in ("terminated", "killed")
    assert not paths.socket.exists() and not paths.pidfile.exists()
    assert runner.run(["ip", "link", "show", "uix-uixt2"], check=False).returncode != 0
    assert _processes_under(paths.exec_root) == [] and not paths.exec_root.exists()
    assert engine.ping(), "stopping the second engine must not disturb the first"
