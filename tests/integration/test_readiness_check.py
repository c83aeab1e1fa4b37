"""Readiness that means ready: a service's readiness names a declared check, polled until it passes
within the readiness timeout, so a service whose health endpoint answers before its real endpoint
counts as started only once the real endpoint answers."""

from __future__ import annotations

import httpx
import pytest

from upgrade_infra.core.errors import ManifestError
from upgrade_infra.stack.manifest import load_manifest

from ..conftest import REPO, running_stack, write_stack

SLOWHOOK = REPO / "tests" / "data" / "slowhook" / "stack.yaml"


def test_started_means_the_real_endpoint_answers():
    with running_stack(SLOWHOOK, "uinfra-ready-") as s:
        env = s.env("production")
        r = httpx.get(env.service_url("web") + "/hook", timeout=5)
        assert r.status_code == 200  # the old readiness (/healthz only) returned ~1.5 s too early: 503
        env.stop_services()
        timings = env.start_services()
        assert timings["web"] >= 1.4
        assert httpx.get(env.service_url("web") + "/hook", timeout=5).status_code == 200


def test_readiness_check_must_be_declared(tmp_path):
    def edit(data):
        data["services"]["web"]["readiness"]["check"] = "no such check"

    with pytest.raises(ManifestError, match="unknown check 'no such check'"):
        load_manifest(write_stack(tmp_path / "stack", SLOWHOOK, edit))
