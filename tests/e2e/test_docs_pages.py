"""The site as a reader meets it, in headless Chromium: runbook pages readable (no
``<IPython.core.display…>``, no raw dicts, no clipped tables), and search working when
``site/index.html`` is opened from files. A screenshot per runbook page, of the tutorial, the
decision tree and the CoS report is kept as a test artefact (tests/e2e/conftest.py says where).

The site is the two-version one of tests/e2e/conftest.py (production and rollback runbooks on a
private copy of the reference stack); ``UPGRADE_INFRA_SITE_DIR=site`` checks an already built site
instead (every runbook page, e.g. after `nox -s site`). Pages are read in the newest version.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from upgrade_infra.docsite import siteversions

from .conftest import shot

RAW_DICT = re.compile(r"\{['\"][\w ]+['\"]: ")  # {'assistant': '1.1.0'} or {"total_s": …}


@pytest.fixture(scope="module")
def site(versioned_site) -> Path:
    """The newest version's pages (``site/<version>/``)."""
    return siteversions.version_root(versioned_site)


def _ran(site: Path) -> list[str]:
    """Runbook pages with real output (a partial publication marks the others 'Not run')."""
    pages = sorted(p.stem for p in (site / "runbooks").glob("*.html") if p.stem != "index")
    return [n for n in pages if "Not run in this publication" not in (site / "runbooks" / f"{n}.html").read_text()]


def test_runbook_pages_are_readable(site, browser):
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
        shot(page, f"runbook-{name}.png", full_page=True)
    assert not problems, "\n".join(problems)
    rb = (site / "runbooks" / "rollback.html").read_text()
    assert "alembic_version" not in rb.split("quarantine", 1)[-1].split("Result", 1)[0]
    page.close()


def test_search_from_files_finds_glossary_and_rollback(site, browser):
    assert "unpkg.com" not in (site / "index.html").read_text()  # the search worker's shim is shipped
    page = browser.new_page()
    page.goto((site / "index.html").as_uri())
    page.click("input[data-md-component='search-query']")
    page.keyboard.type("quarantine")
    page.wait_for_selector(".md-search-result__item", timeout=15000)
    hits = page.locator(".md-search-result__item a").evaluate_all("els => els.map(e => e.href)")
    assert any("reference/glossary" in h for h in hits), hits
    assert any("/rollback/" in h for h in hits), hits
    shot(page, "search-offline-quarantine.png")
    page.close()


def test_new_pages_render(site, browser):
    page = browser.new_page()
    page.goto((site / "help" / "something-went-wrong.html").as_uri())
    page.wait_for_selector("div.mermaid", timeout=15000)
    assert page.locator("div.mermaid").first.bounding_box()["height"] > 200
    shot(page, "decision-tree.png", full_page=True)
    page.goto((site / "tutorials" / "getting-started.html").as_uri())
    assert page.locator("text=Checkpoint").count() >= 8
    shot(page, "tutorial.png", full_page=True)
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
    shot(page, "cos-report-full.png", full_page=True)
    page.close()
