"""The site as a reader meets it, in headless Chromium: runbook pages readable (no
``<IPython.core.display…>``, no raw dicts, no clipped tables), and search working when
``site/index.html`` is opened from files. Screenshots go to reports/screenshots/.

By default a site is published from the production and rollback runbooks on a private copy of the
reference stack; ``UPGRADE_INFRA_SITE_DIR=site`` checks an already built site instead (every runbook
page, e.g. after `nox -s site`).
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

SHOTS = REPO / "reports" / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--allow-file-access-from-files"]
RAW_DICT = re.compile(r"\{['\"][\w ]+['\"]: ")  # {'assistant': '1.1.0'} or {"total_s": …}


@pytest.fixture(scope="module")
def site():
    given = os.environ.get("UPGRADE_INFRA_SITE_DIR")
    if given:
        yield Path(given).resolve()
        return
    root = Path(tempfile.mkdtemp(prefix="uinfra-docs-"))
    os.chmod(root, 0o711)
    write_stack(root / "stack")
    r = subprocess.run(
        [sys.executable, "-m", "upgrade_infra", "--stack", str(root / "stack" / "stack.yaml"), "site", "publish",
         "--reports", str(root / "reports"), "--site", str(root / "site"), "--run-state-dir", str(root / "state"),
         "--only", "production", "--only", "rollback"],
        cwd=REPO, env={**os.environ, "UPGRADE_INFRA_SEED_MB": "4"}, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    yield root / "site"
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian chromium not installed")
    with playwright.sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        ctx = p.chromium.launch_persistent_context(profile, executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS,
                                                   headless=True, viewport={"width": 1280, "height": 900})
        yield ctx
        ctx.close()


def _ran(site: Path) -> list[str]:
    """Runbook pages with real output (a partial publication marks the others 'Not run')."""
    pages = sorted(p.stem for p in (site / "runbooks").glob("*.html") if p.stem != "index")
    return [n for n in pages if "Not run in this publication" not in (site / "runbooks" / f"{n}.html").read_text()]


def test_runbook_pages_are_readable(site, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    names = _ran(site)
    assert "rollback" in names
    page = browser.new_page()
    problems = []
    for name in names:
        page.goto((site / "runbooks" / f"{name}.html").as_uri())
        page.wait_for_load_state("load")
        if "IPython.core.display" in page.content():
            problems.append(f"{name}: <IPython.core.display…>")
        text = "\n".join(page.locator(".jp-OutputArea-output").all_inner_texts())  # outputs, not the code
        if RAW_DICT.search(text):
            m = RAW_DICT.search(text)
            problems.append(f"{name}: raw dict {text[m.start():m.start() + 60]!r}")
        for machine in ("/tmp/", "/work/", "/root/", "/home/"):  # no machine paths
            if machine in text:
                i = text.index(machine)
                problems.append(f"{name}: machine path {text[max(0, i - 40):i + 40]!r}")
        # no table cut off: each output table fits its box or its box scrolls sideways
        clipped = page.evaluate("""() => [...document.querySelectorAll('article table')].filter(t => {
            let box = t.parentElement;
            while (box && box !== document.body) {
                const s = getComputedStyle(box);
                if (box.clientWidth < t.scrollWidth - 1 && s.overflowX !== 'auto' && s.overflowX !== 'scroll'
                    && box.scrollWidth <= box.clientWidth) return true;
                if (s.overflowX === 'auto' || s.overflowX === 'scroll') return false;
                box = box.parentElement;
            }
            return false;
        }).length""")
        if clipped:
            problems.append(f"{name}: {clipped} clipped tables")
        page.screenshot(path=str(SHOTS / f"runbook-{name}.png"), full_page=True)
    assert not problems, "\n".join(problems)
    rb = (site / "runbooks" / "rollback.html").read_text()
    assert "alembic_version" not in rb.split("quarantine", 1)[-1].split("Result", 1)[0]
    page.close()


def test_search_from_files_finds_glossary_and_rollback(site, browser):
    page = browser.new_page()
    page.goto((site / "index.html").as_uri())
    page.click("input[data-md-component='search-query']")
    page.keyboard.type("quarantine")
    page.wait_for_selector(".md-search-result__item", timeout=15000)
    hits = page.locator(".md-search-result__item a").evaluate_all("els => els.map(e => e.href)")
    assert any("reference/glossary" in h for h in hits), hits
    assert any("/rollback/" in h for h in hits), hits
    page.screenshot(path=str(SHOTS / "search-offline-quarantine.png"))
    page.close()


def test_new_pages_render(site, browser):
    page = browser.new_page()
    page.goto((site / "help" / "something-went-wrong.html").as_uri())
    page.wait_for_selector("div.mermaid", timeout=15000)
    assert page.locator("div.mermaid").first.bounding_box()["height"] > 200
    page.screenshot(path=str(SHOTS / "decision-tree.png"), full_page=True)
    page.goto((site / "tutorials" / "getting-started.html").as_uri())
    assert page.locator("text=Checkpoint").count() >= 8
    page.screenshot(path=str(SHOTS / "tutorial.png"), full_page=True)
    page.goto((site / "reference" / "glossary.html").as_uri())
    assert page.locator("abbr[title]").count() > 0 or page.locator("dl dt").count() >= 6
    page.goto((site / "rollback" / "concepts.html").as_uri())
    assert page.locator("abbr[title]").count() > 0  # glossary tooltips
    assert page.locator(".md-footer__link--next").count() == 1  # previous/next footer
    assert page.locator(".md-source-file").count() == 1  # last updated
    page.goto((site / "validation" / "cos-report.html").as_uri())
    text = page.inner_text("article")
    for row in ("Disaster recovery", "Reporting", "Security review", "Documentation accurate"):
        assert row in text
    page.screenshot(path=str(SHOTS / "cos-report-full.png"), full_page=True)
    page.close()
