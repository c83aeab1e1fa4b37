"""The versioned site from files (file://), as the README tells readers to open it: site/index.html
leads to the newest version, the version selector lists both published versions and switching lands
on the same page of the other version; without a repository URL every page links to its source."""

from __future__ import annotations

import json

import pytest

from upgrade_infra.docsite import siteversions

from .conftest import VERSIONS, shot

PAGE = "rollback/how-to.html"


@pytest.fixture(scope="module")
def listed(versioned_site):
    versions = [v["version"] for v in json.loads((versioned_site / siteversions.MANIFEST).read_text())]
    if len(versions) < 2:
        pytest.skip(f"{versioned_site} has one version: publish twice with --docs-version")
    return versions


def _selector(page) -> list[tuple[str, str]]:
    page.wait_for_selector("[data-uinfra=version-selector]", state="attached", timeout=10000)
    return page.locator("[data-uinfra=version-selector] a.md-version__link").evaluate_all(
        "els => els.map(e => [e.dataset.version, e.href])")


def test_switch_versions_from_files(versioned_site, listed, browser):
    newest, older = listed[0], listed[1]
    if not (versioned_site / "0.2.0").exists():  # a given site: its own names
        assert newest != older
    else:
        assert listed[:2] == list(reversed(VERSIONS))
    page = browser.new_page()
    page.goto((versioned_site / "index.html").as_uri())  # what the README says to open
    page.wait_for_url(f"**/{newest}/index.html")
    assert page.url.startswith("file://")
    assert page.locator("[data-uinfra=version-selector] .md-version__current").inner_text() == newest

    page.goto((versioned_site / newest / PAGE).as_uri())
    links = _selector(page)
    assert [v for v, _ in links] == listed
    assert all(href.endswith(f"/{v}/{PAGE}") for v, href in links), links
    page.hover("[data-uinfra=version-selector]")
    page.wait_for_selector(f"a.md-version__link[data-version='{older}']", state="visible")
    shot(page, "version-selector.png")
    page.click(f"a.md-version__link[data-version='{older}']")
    page.wait_for_url(f"**/{older}/{PAGE}")
    assert page.url == (versioned_site / older / PAGE).as_uri()
    # the older build's own inlined list knew only itself: versions.js (no fetch) brings the newer one
    assert [v for v, _ in _selector(page)] == listed
    assert page.locator("[data-uinfra=version-selector] .md-version__current").inner_text() == older
    banner = page.locator("[data-uinfra=outdated]")
    assert banner.is_visible() and newest in banner.inner_text()
    shot(page, "version-older-with-banner.png")
    banner.locator("a").click()
    page.wait_for_url(f"**/{newest}/{PAGE}")
    assert page.locator("[data-uinfra=outdated]").count() == 0

    page.goto((versioned_site / "latest" / PAGE).as_uri())  # the alias keeps the page
    page.wait_for_url(f"**/{newest}/{PAGE}")
    page.close()


def test_view_source_link_without_a_repository_url(versioned_site, listed, browser):
    root = versioned_site / listed[0]
    page = browser.new_page()
    page.goto((root / PAGE).as_uri())
    link = page.locator("[data-uinfra=view-source]")
    assert link.count() == 1 and page.locator("a[rel=edit]").count() == 0
    link.click()
    page.wait_for_url("**/_sources/rollback/how-to.md.txt")
    text = page.inner_text("body")
    assert text.lstrip().startswith("#") and "upgrade-infra rollback" in text  # the Markdown, shown as text
    page.goto((root / "runbooks" / "rollback.html").as_uri())
    href = page.locator("[data-uinfra=view-source]").get_attribute("href")
    assert href == "rollback.ipynb" and (root / "runbooks" / "rollback.ipynb").exists()
    page.close()
