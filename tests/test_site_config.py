"""Site building details: runbook links to docs pages work on the site, edit links when the
repository's URL is known, docs linked (not copied) so "last updated" comes from git."""

from __future__ import annotations

from upgrade_infra.docsite import publish

from .conftest import REPO


def test_runbook_links_point_at_site_pages():
    text = ('See [concepts](../docs/rollback/concepts.md). <a href="../docs/help/something-went-wrong.md">tree</a> '
            "[cos](../validation/cos-report.md#what-it-is) [ext](https://example.org/x.md)")
    assert publish.doc_links(text) == (
        'See [concepts](../rollback/concepts.html). <a href="../help/something-went-wrong.html">tree</a> '
        "[cos](../validation/cos-report.html#what-it-is) [ext](https://example.org/x.md)")


def test_edit_links_only_with_a_repository_url(monkeypatch):
    config = (REPO / "mkdocs.yml").read_text()
    assert publish.site_config(config, None) == config.replace("\nextra:\n", "\nextra:\n  view_source: true\n", 1)
    assert "\nrepo_url:" not in publish.site_config(config, None)
    assert 'copyright: "upgrade-infra 0.1.0, docs built from abc"' in publish.site_config(
        config, None, "upgrade-infra 0.1.0, docs built from abc")
    with_url = publish.site_config(config, "https://forge.example/team/upgrade-infra")
    assert "repo_url: https://forge.example/team/upgrade-infra\nedit_uri: edit/main/docs/" in with_url
    assert "view_source" not in with_url
    gitlab = publish.site_config(config, "https://gitlab.example/team/upgrade-infra", edit_uri="-/edit/release/docs/")
    assert "edit_uri: -/edit/release/docs/" in gitlab
    monkeypatch.setenv("UPGRADE_INFRA_REPO_URL", "git@forge.example:team/upgrade-infra.git")
    assert publish.repo_url(REPO) == "https://forge.example/team/upgrade-infra"


def test_docs_are_linked_not_copied(tmp_path):
    publish.link_tree(REPO / "docs", tmp_path / "docs")
    page = tmp_path / "docs" / "rollback" / "concepts.md"
    assert page.is_symlink() and page.resolve() == (REPO / "docs" / "rollback" / "concepts.md").resolve()
    publish._write(page, "generated")  # never writes through the link into the repository
    assert not page.is_symlink() and (REPO / "docs" / "rollback" / "concepts.md").read_text() != "generated"
