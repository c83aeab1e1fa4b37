"""The versioned site layout (siteversions): re-publishing a version replaces it, other versions stay,
retention drops the oldest, `latest/` and the root lead to the newest, only the site dir is written;
and the theme override renders edit links with a repository URL, "view source" links without one."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from upgrade_infra.core.errors import BadInput
from upgrade_infra.docsite import publish, siteassets, siteversions

from .conftest import REPO


def _build(root: Path, version: str, pages=("index.html", "rollback/how-to.html")) -> Path:
    """A stand-in for an mkdocs build of ``version``."""
    d = root / f"build-{version}-{len(list(root.glob('build-*')))}"
    for p in pages:
        (d / p).parent.mkdir(parents=True, exist_ok=True)
        (d / p).write_text(f"<html>{version} {p}</html>")
    return d


def _publish(root: Path, site: Path, version: str, keep: int = siteversions.DEFAULT_KEEP, **kw) -> list[str]:
    versions, removed = siteversions.plan(siteversions.read(site), version, keep)
    siteversions.install(_build(root, version, **kw), site, version, versions, removed)
    return removed


def _tree(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): p.read_text() for p in sorted(d.rglob("*")) if p.is_file()}


def test_plan_orders_by_version_and_aliases_the_newest():
    versions, removed = siteversions.plan(None, "0.9.0")
    assert [v["version"] for v in versions] == ["0.9.0"] and versions[0]["aliases"] == ["latest"] and not removed
    existing = [{"version": v, "title": v, "aliases": [], "published_at": "x", "commit": None}
                for v in ("1.10.0", "1.9.0", "1.2.0rc1")]
    versions, _ = siteversions.plan(existing, "1.2.0")
    assert [v["version"] for v in versions] == ["1.10.0", "1.9.0", "1.2.0", "1.2.0rc1"]
    assert [v["aliases"] for v in versions] == [["latest"], [], [], []]
    # retention: the oldest go, never the one being published (a docs fix for an old release)
    versions, removed = siteversions.plan(existing, "1.0.1", keep=2)
    assert [v["version"] for v in versions] == ["1.10.0", "1.0.1"] and removed == ["1.9.0", "1.2.0rc1"]


@pytest.mark.parametrize("bad", ["latest", "../x", "a/b", ".hidden", "", "x" * 70])
def test_bad_version_names_are_refused(bad):
    with pytest.raises(BadInput):
        siteversions.check_name(bad)


def test_keep_at_least_one():
    with pytest.raises(BadInput, match="at least"):
        siteversions.plan(None, "1.0.0", keep=0)


def test_publish_twice_keeps_both_and_republishing_replaces(tmp_path):
    site = tmp_path / "site"
    _publish(tmp_path, site, "0.1.0")
    _publish(tmp_path, site, "0.2.0", pages=("index.html", "rollback/how-to.html", "new.html"))
    assert [v["version"] for v in siteversions.read(site)] == ["0.2.0", "0.1.0"]
    assert siteversions.version_root(site) == site / "0.2.0"
    assert (site / "0.1.0" / "rollback" / "how-to.html").read_text() == "<html>0.1.0 rollback/how-to.html</html>"
    # latest/: the same page of the newest version, relative (works from file:// and any server path)
    stub = (site / "latest" / "rollback" / "how-to.html").read_text()
    assert 'url=../../0.2.0/rollback/how-to.html"' in stub and "location.replace" in stub
    assert 'url=0.2.0/index.html"' in (site / "index.html").read_text()
    js = (site / "versions.js").read_text()
    data = json.loads(re.match(r"window.__uinfraVersions = (.*);\n$", js, re.S).group(1))
    assert [(v["version"], v["aliases"], "new.html" in v["pages"]) for v in data["versions"]] == [
        ("0.2.0", ["latest"], True), ("0.1.0", [], False)]
    # the same version again: replaced, nothing else touched
    before = _tree(site / "0.2.0")
    _publish(tmp_path, site, "0.1.0", pages=("index.html",))
    assert _tree(site / "0.1.0") == {"index.html": "<html>0.1.0 index.html</html>"}
    assert _tree(site / "0.2.0") == before
    assert [v["version"] for v in siteversions.read(site)] == ["0.2.0", "0.1.0"]
    assert not [p.name for p in site.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_retention_removes_the_oldest(tmp_path):
    site = tmp_path / "site"
    for v in ("1.0.0", "1.1.0", "1.2.0"):
        _publish(tmp_path, site, v, keep=2)
    assert sorted(p.name for p in site.iterdir()) == ["1.1.0", "1.2.0", "index.html", "latest", "versions.js",
                                                      "versions.json"]


def test_only_the_site_dir_is_written(tmp_path):
    site = tmp_path / "out" / "site"
    (tmp_path / "out" / "neighbour.txt").parent.mkdir()
    (tmp_path / "out" / "neighbour.txt").write_text("mine")
    build = _build(tmp_path, "1.0.0")
    versions, removed = siteversions.plan(None, "1.0.0")
    siteversions.install(build, site, "1.0.0", versions, removed)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["neighbour.txt", "site"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # the build was moved in, nothing else


def test_an_unversioned_site_is_replaced(tmp_path):
    site = tmp_path / "site"
    (site / "search").mkdir(parents=True)
    (site / "index.html").write_text("old flat site")
    (site / "search" / "search_index.js").write_text("x")
    _publish(tmp_path, site, "1.0.0")
    assert sorted(p.name for p in site.iterdir()) == ["1.0.0", "index.html", "latest", "versions.js",
                                                      "versions.json"]


def _mkdocs(tmp_path: Path, config: str) -> Path:
    """A two-page Material site built with the repository's theme overrides."""
    docs = tmp_path / "docs"
    (docs / "rollback").mkdir(parents=True, exist_ok=True)
    (docs / "index.md").write_text("# Home\n")
    (docs / "rollback" / "how-to.md").write_text("# How to\n\n`upgrade-infra rollback production`\n")
    (tmp_path / "mkdocs.yml").write_text(config)
    shutil.rmtree(tmp_path / "site", ignore_errors=True)
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(tmp_path / "mkdocs.yml"),
                    "-d", str(tmp_path / "site")], check=True, timeout=120, env={"NO_MKDOCS_2_WARNING": "1",
                                                                                 "PATH": "/usr/bin:/bin"})
    siteassets.copy_page_sources(docs, tmp_path / "site")
    return tmp_path / "site"


def test_edit_link_with_a_repository_url_view_source_without(tmp_path):
    pytest.importorskip("material")
    base = (f"site_name: t\ndocs_dir: docs\nuse_directory_urls: false\n"
            f"theme:\n  name: material\n  custom_dir: {REPO / 'overrides'}\n  features: [content.action.edit]\n"
            "nav:\n  - index.md\n  - rollback/how-to.md\n")
    site = _mkdocs(tmp_path, publish.site_config(base, None))
    page = (site / "rollback" / "how-to.html").read_text()
    assert 'href="../_sources/rollback/how-to.md.txt"' in page and 'rel="edit"' not in page
    assert (site / "_sources" / "rollback" / "how-to.md.txt").read_text().startswith("# How to")
    site = _mkdocs(tmp_path, publish.site_config(base, "https://forge.example/team/ui", edit_uri="-/edit/rel/docs/"))
    page = (site / "rollback" / "how-to.html").read_text()
    assert 'href="https://forge.example/team/ui/-/edit/rel/docs/rollback/how-to.md"' in page
    assert "data-uinfra=\"view-source\"" not in page
    # the version selector's list is inlined at build time (the fallback when versions.js is absent)
    data = siteversions.selector_data(siteversions.plan(None, "2.0.0")[0], "2.0.0")
    site = _mkdocs(tmp_path, siteversions.set_extra(base, "docs_versions", data))
    page = (site / "index.html").read_text()
    assert '"current": "2.0.0"' in page and 'src="./../versions.js"' in page
