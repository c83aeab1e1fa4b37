"""The publication gate end to end: real runbooks on a copy of the reference stack, the site built,
checked in headless Chromium, secrets absent, and a too-small rollback budget blocking publication.

Runs the production and rollback runbooks only (the full set runs under nbval and in `nox -s site`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from upgrade_infra.docsite import siteversions

from ..conftest import REPO, write_stack
from .conftest import CHROMIUM_ARGS, shot

SECRET = "planted-pa-key-0f9e8d7c6b5a"


def publish(root: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PA_SECRET_KEY": SECRET, "UPGRADE_INFRA_SEED_MB": "4"}
    return subprocess.run(
        [sys.executable, "-m", "upgrade_infra", "--stack", str(root / "stack" / "stack.yaml"), "--json", "site",
         "publish", "--reports", str(root / "reports"), "--site", str(root / "site"),
         "--run-state-dir", str(root / "state"), "--only", "production", "--only", "rollback", *extra],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def published():
    root = Path(tempfile.mkdtemp(prefix="uinfra-site-"))
    os.chmod(root, 0o711)
    write_stack(root / "stack")
    r = publish(root)
    yield root, r
    shutil.rmtree(root, ignore_errors=True)


def test_gate_passes_and_writes_summary(published):
    root, r = published
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((root / "reports" / "latest" / "summary.json").read_text())
    assert summary["gate"] == "pass"
    assert {x["name"]: x["status"] for x in summary["runbooks"]} == {"production": "passed", "rollback": "passed"}
    rb = summary["rollback"]
    assert rb["verified"] and 0 < rb["total_s"] <= rb["budget_s"] == 300
    assert isinstance(rb["quarantined_rows"], int)
    assert summary["site_version"] == siteversions.default_version() == summary["site_versions"][0]
    newest = siteversions.version_root(root / "site")
    assert newest == root / "site" / summary["site_version"]
    assert (root / "site" / "index.html").exists() and (newest / "validation" / "cos-report.html").exists()


def test_no_secret_in_reports_or_site(published):
    root, _ = published
    state_secrets = [f.read_text().strip() for f in (root / "state" / "secrets").rglob("*") if f.is_file()]
    planted = [SECRET, *state_secrets]
    for top in (root / "reports", root / "site"):
        for f in top.rglob("*"):
            if f.is_file() and f.suffix not in (".png", ".gz", ".woff2", ".woff"):
                text = f.read_text(errors="replace")
                for value in planted:
                    assert value not in text, f"{value[:4]}… leaked into {f}"


def _digest(d: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in d.rglob("*") if p.is_file()):
        h.update(f.read_bytes())
    return h.hexdigest()


def test_gate_fails_when_rollback_is_over_budget_and_keeps_site(published):
    root, _ = published
    before = _digest(root / "site")
    r = publish(root, "--rollback-budget", "0.01")
    assert r.returncode == 1
    assert "over the 0.01s budget" in r.stderr
    summary = json.loads((root / "reports" / "latest" / "summary.json").read_text())
    assert summary["gate"] == "fail"
    assert _digest(root / "site") == before


def test_site_in_the_browser(published):
    playwright = pytest.importorskip("playwright.sync_api")
    root, _ = published
    server = subprocess.Popen([sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory",
                               str(root / "site")], stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline().split("port ")[1].split(" ")[0])
        base = f"http://127.0.0.1:{port}"
        with playwright.sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
            ctx = p.chromium.launch_persistent_context(profile, executable_path="/usr/bin/chromium",
                                                       args=CHROMIUM_ARGS, headless=True,
                                                       viewport={"width": 1280, "height": 900})
            page = ctx.new_page()
            page.goto(f"{base}/index.html")
            # Material swaps <pre class="mermaid"> for a <div> holding the SVG in a closed shadow root
            page.wait_for_selector("div.mermaid", timeout=15000)
            assert page.evaluate("typeof mermaid") == "object"  # shipped with the site, not from a CDN
            assert page.locator("div.mermaid").first.bounding_box()["height"] > 40
            assert page.locator("[data-uinfra=version-selector]").count() == 1  # served: the same selector
            shot(page, "served-home.png")
            page.click("text=Acceptance (CoS) report")  # navigation
            page.wait_for_selector("text=Rapid rollback")
            shot(page, "served-cos-report.png", full_page=True)
            page.goto(f"{base}/latest/runbooks/rollback.html")  # the alias redirects to the same page
            page.wait_for_selector("text=PASSED")
            assert page.locator(".jp-OutputArea-output, .output_area").count() > 0  # real outputs
            assert page.url.endswith(f"/{siteversions.default_version()}/runbooks/rollback.html")
            shot(page, "served-runbook-rollback.png")
            page.goto(f"{base}/index.html")
            page.click("input[data-md-component='search-query']")  # the search box, in the header
            page.keyboard.type("rollback")
            page.wait_for_selector(".md-search-result__item", timeout=15000)
            hits = page.locator(".md-search-result__item a").evaluate_all("els => els.map(e => e.href)")
            assert any("runbooks/rollback" in h for h in hits), hits
            shot(page, "served-search.png")
            ctx.close()
    finally:
        server.terminate()
        server.wait(10)
