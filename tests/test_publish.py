"""The gate's decisions and the site build (real mkdocs): strict really fails, the old site survives."""

from __future__ import annotations

import shutil

import pytest

from upgrade_infra.core import runner
from upgrade_infra.core.errors import CommandFailed
from upgrade_infra.docsite import publish
from upgrade_infra.docsite.runbooks import RunResult
from upgrade_infra.operations.session import Session

from .conftest import REPO


def result(name: str, status: str = "passed", **figures) -> RunResult:
    return RunResult(name, status, 1.0, f"/r/{name}.ipynb", f"/r/{name}.json",
                     None if status == "passed" else "boom", figures=figures)


def test_gate_passes_with_verified_rollback_within_budget():
    s = publish.summarize([result("production"), result("rollback", rollback={"total_s": 12.5, "verified": True,
                                                                                "quarantined_rows": 3})], 300, None)
    assert s.gate == "pass" and s.ok and s.reasons == []
    assert s.rollback == {"total_s": 12.5, "verified": True, "quarantined_rows": 3, "budget_s": 300}
    assert s.verdict == "gate pass: 2 of 2 runbooks passed; rollback 12.5 s of 300 s, verified"
    assert list(s.to_dict()) == ["generated_at", "runbooks", "rollback", "gate", "reasons"]  # summary.json's keys


@pytest.mark.parametrize("results, reason", [
    ([result("production", "failed"), result("rollback", rollback={"total_s": 1, "verified": True})],
     "runbook production failed"),
    ([result("production")], "did not run"),
    ([result("rollback", rollback={"total_s": 400, "verified": True})], "over the 300s budget"),
    ([result("rollback", rollback={"total_s": 4, "verified": False})], "no verified rollback"),
])
def test_gate_fails(results, reason):
    s = publish.summarize(results, 300, None)
    assert s.gate == "fail" and not s.ok and any(reason in r for r in s.reasons)


def _mini_repo(tmp_path, index_text: str):
    repo = tmp_path / "repo"
    (repo / "docs").mkdir(parents=True)
    (repo / "docs" / "index.md").write_text(index_text)
    (repo / "mkdocs.yml").write_text("site_name: t\nstrict: true\nnav:\n  - index.md\n")
    return repo


def test_strict_build_fails_on_a_broken_link(tmp_path):
    """Regression: `mkdocs build --strict -q` swallowed the warnings and passed."""
    repo = _mini_repo(tmp_path, "# t\n\n[gone](missing.md)\n")
    build = repo / "build"
    shutil.copytree(repo / "docs", build / "docs")
    shutil.copy2(repo / "mkdocs.yml", build / "mkdocs.yml")
    argv = publish.mkdocs_argv(build / "mkdocs.yml", build / "site")
    assert "-q" not in argv
    with pytest.raises(CommandFailed, match="missing.md"):
        runner.run(argv, timeout=120)
    (build / "docs" / "index.md").write_text("# t\n")
    runner.run(argv, timeout=120)
    assert (build / "site" / "index.html").exists()


def test_swap_in_replaces_site_atomically(tmp_path):
    site, new = tmp_path / "site", tmp_path / "new"
    site.mkdir()
    (site / "index.html").write_text("old")
    new.mkdir()
    (new / "index.html").write_text("new")
    publish.swap_in(new, site)
    assert (site / "index.html").read_text() == "new" and not new.exists()
    assert not (tmp_path / "site.old").exists()


def test_mermaid_is_shipped_not_loaded_from_a_cdn(tmp_path):
    from upgrade_infra.docsite import siteassets

    assert siteassets.npm_pack_argv("mermaid@11.17.2", tmp_path) == [
        "npm", "pack", "mermaid@11.17.2", "--silent", "--pack-destination", str(tmp_path)]
    js = siteassets.mermaid_js(tmp_path / "cache")
    assert js.stat().st_size > 1_000_000 and b"mermaid" in js.read_bytes()[:20000]
    assert siteassets.mermaid_js(tmp_path / "cache") == js  # cached


def test_publish_never_wipes_a_state_dir_it_did_not_make(tmp_path):
    from upgrade_infra.core.errors import BadInput

    state = tmp_path / "state"
    (state / "envs" / "production").mkdir(parents=True)
    (state / "envs" / "production" / "env.json").write_text("{}")
    paths = publish.Paths(tmp_path, tmp_path / "reports", tmp_path / "site")
    with pytest.raises(BadInput, match="refusing to wipe"):
        publish.publish(Session(tmp_path / "stack.yaml", state), paths, rollback_budget_s=300)
    assert (state / "envs" / "production" / "env.json").exists()


def test_the_search_worker_shim_is_shipped_not_loaded_from_unpkg(tmp_path):
    """The offline plugin loads iframe-worker from unpkg.com unless a polyfill naming it is configured:
    without internet, search from files then never starts."""
    from upgrade_infra.docsite import siteassets

    js = siteassets.iframe_worker_js(tmp_path / "cache")
    assert 100 < js.stat().st_size < 100_000 and b"Worker" in js.read_bytes()
    assert "javascripts/iframe-worker-shim.js" in (REPO / "mkdocs.yml").read_text()
