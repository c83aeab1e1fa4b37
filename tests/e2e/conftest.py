"""Browser fixtures shared by the site tests: headless Debian Chromium, a site published twice (two
versions, so the version selector has something to switch between), and screenshots kept as test
artefacts.

Screenshots go to ``$UPGRADE_INFRA_ARTEFACTS/screenshots/`` (default ``reports/screenshots/`` in the
repository); every path saved is printed at the end of the run (and on the test's own output).
``UPGRADE_INFRA_SITE_DIR=site`` checks an already published site instead of publishing one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ..conftest import REPO, write_stack

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VERSIONS = ("0.1.0", "0.2.0")  # published in this order: the second is the latest
SAVED: list[Path] = []


def artefacts_dir() -> Path:
    base = os.environ.get("UPGRADE_INFRA_ARTEFACTS")
    d = (Path(base).resolve() if base else REPO / "reports") / "screenshots"
    d.mkdir(parents=True, exist_ok=True)
    return d


def shot(page, name: str, **kw) -> Path:
    """Save a screenshot as a test artefact and say where."""
    path = artefacts_dir() / name
    page.screenshot(path=str(path), **kw)
    assert path.stat().st_size > 1000, f"empty screenshot {path}"
    SAVED.append(path)
    print(f"screenshot: {path}")
    return path


def pytest_terminal_summary(terminalreporter):
    if SAVED:
        terminalreporter.section("screenshots (test artefacts)")
        for p in dict.fromkeys(SAVED):
            terminalreporter.write_line(str(p))


def publish_site(root: Path, version: str, *extra: str) -> subprocess.CompletedProcess:
    """``site publish`` of the production and rollback runbooks on the private stack in ``root``."""
    return subprocess.run(
        [sys.executable, "-m", "upgrade_infra", "--stack", str(root / "stack" / "stack.yaml"), "site", "publish",
         "--reports", str(root / "reports"), "--site", str(root / "site"), "--run-state-dir", str(root / "state"),
         "--only", "production", "--only", "rollback", "--docs-version", version, *extra],
        cwd=REPO, env={**os.environ, "UPGRADE_INFRA_SEED_MB": "4"}, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="session")
def versioned_site():
    """The site root (``site/``): published twice, as 0.1.0 then 0.2.0."""
    given = os.environ.get("UPGRADE_INFRA_SITE_DIR")
    if given:
        yield Path(given).resolve()
        return
    root = Path(tempfile.mkdtemp(prefix="uinfra-docs-"))
    os.chmod(root, 0o711)
    write_stack(root / "stack")
    for version in VERSIONS:
        r = publish_site(root, version)
        assert r.returncode == 0, r.stderr[-3000:]
    yield root / "site"
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    """Chromium as a reader starts it: no flag for pages opened from files, no internet needed."""
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian chromium not installed")
    with playwright.sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        ctx = p.chromium.launch_persistent_context(profile, executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS,
                                                   headless=True, viewport={"width": 1280, "height": 900})
        ctx.route(re.compile(r"^https?://(?!127\.0\.0\.1)"), lambda route: route.abort())  # offline, as promised
        yield ctx
        ctx.close()
