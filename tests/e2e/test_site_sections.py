"""The site's "Runbooks on Docker Compose" section: executed outputs shown when a run of the section was
made from the commit the site is built from, a plain "not executed in this build" otherwise (never an
old or made-up output).

The run here is real (`site run-section compose --only upgrade`, Papermill executing the upgrade runbook),
against a private copy of the local reference stack: what is tested is how the site takes a section's run
in, the same whichever stack it ran against (the run against the Compose example itself is
`nox -s compose`, which has the engine).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from upgrade_infra.docsite import publish

from ..conftest import REPO, write_stack


def cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "upgrade_infra", "--stack", str(root / "stack" / "stack.yaml"),
                           "--json", *args], cwd=REPO, env={**os.environ, "UPGRADE_INFRA_SEED_MB": "4"},
                          capture_output=True, text=True, timeout=900)


def text_of(page: Path) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.read_text()))


@pytest.fixture(scope="module")
def with_section():
    """A section run (the upgrade runbook), then a site published from the same commit."""
    root = Path(tempfile.mkdtemp(prefix="uinfra-section-"))
    os.chmod(root, 0o711)
    write_stack(root / "stack")
    ran = cli(root, "site", "run-section", "compose", "--only", "upgrade", "--reports", str(root / "reports"),
              "--run-state-dir", str(root / "section-state"))
    published = cli(root, "site", "publish", "--reports", str(root / "reports"), "--site", str(root / "site"),
                    "--run-state-dir", str(root / "state"), "--only", "production", "--only", "rollback")
    yield root, ran, published
    shutil.rmtree(root, ignore_errors=True)


def test_section_run_writes_its_summary_with_the_commit(with_section):
    root, ran, _ = with_section
    assert ran.returncode == 1, ran.stderr[-3000:]  # only `upgrade` ran: no rollback drill, so the gate says so
    summary = json.loads((root / "reports" / "compose" / "latest" / "summary.json").read_text())
    assert summary["section"] == "compose" and summary["commit"] == publish.git_describe(REPO)
    assert {r["name"]: r["status"] for r in summary["runbooks"]} == {"upgrade": "passed"}
    assert "the rollback drill did not run" in summary["reasons"]
    assert (root / "reports" / "compose" / "latest" / "upgrade.ipynb").exists()
    assert not (root / "section-state" / "environments").exists() or not any(
        (root / "section-state" / "environments").iterdir())  # every environment the run made is removed


def test_compose_section_renders_the_executed_outputs(with_section):
    root, _, published = with_section
    assert published.returncode == 0, published.stderr[-3000:]
    site = publish.siteversions.version_root(root / "site")
    executed = json.loads((root / "reports" / "compose" / "latest" / "upgrade.ipynb").read_text())
    header = next(c for c in executed["cells"] if c["cell_type"] == "markdown")
    when = re.search(r"Run of ([^:]+:\d\d:\d\d UTC)", "".join(header["source"])).group(1)

    page = text_of(site / "runbooks" / "compose" / "upgrade.html")
    assert f"Run of {when}: PASSED" in page  # the executed notebook's own header, not a placeholder
    assert "guarded upgrade" in page.lower() and "restore point" in page
    assert "Not executed in this build" not in page
    # the executed outputs: the upgrade's step table, as the run wrote it
    outputs = [o for c in executed["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    step_table = next(o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})
                      and "switch_versions" in "".join(o["data"]["text/html"]))
    assert "switch_versions" in page and "Duration" in "".join(step_table)
    # links from the runbook's markdown to the docs go two levels up from runbooks/compose/
    html = (site / "runbooks" / "compose" / "upgrade.html").read_text()
    assert 'href="../../rollback/how-to.html"' in html

    index = text_of(site / "runbooks" / "compose.html")
    assert f"Executed from commit {publish.git_describe(REPO)}" in index
    assert re.search(r"upgrade compose/upgrade passed", index)
    assert re.search(r"staging compose/staging not executed", index)
    # a runbook of the section that was not part of the run: said plainly, no output
    assert "Not executed in this build" in text_of(site / "runbooks" / "compose" / "staging.html")


def test_a_run_from_another_commit_is_not_shown(with_section, tmp_path):
    root, _, _ = with_section
    reports = tmp_path / "reports"
    shutil.copytree(root / "reports" / "compose", reports / "compose", symlinks=True)
    summary_path = (reports / "compose" / "latest").resolve() / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary["commit"] = "0000000-another"
    summary_path.write_text(json.dumps(summary))
    nb_dir = tmp_path / "build" / "docs" / "runbooks"
    shown = publish.add_section(publish.Paths(REPO, reports, tmp_path / "site"), nb_dir, "compose")
    assert shown is None
    index = (nb_dir / "compose.md").read_text()
    assert "Not executed in this build" in index and "0000000-another" in index and "nox -s compose" in index
    for name in publish.SECTIONS["compose"].runbooks:
        nb = json.loads((nb_dir / "compose" / f"{name}.ipynb").read_text())
        assert [c["cell_type"] for c in nb["cells"]] == ["markdown"]  # the notice only, no output
        assert "Not executed in this build" in "".join(nb["cells"][0]["source"])


def test_without_a_run_the_page_says_how_to_produce_it(tmp_path):
    nb_dir = tmp_path / "build" / "docs" / "runbooks"
    assert publish.add_section(publish.Paths(REPO, tmp_path / "reports", tmp_path / "site"), nb_dir, "compose") is None
    index = (nb_dir / "compose.md").read_text()
    assert "Not executed in this build" in index and "no run in" in index and "nox -s compose" in index


def test_compose_pages_in_the_browser(with_section, browser):
    """The Compose how-to (its Mermaid diagram drawn) and an executed Compose-section runbook, as a reader
    sees them from files; screenshots kept as test artefacts."""
    from .conftest import shot

    root, _, published = with_section
    assert published.returncode == 0, published.stderr[-3000:]
    site = publish.siteversions.version_root(root / "site")
    page = browser.new_page()
    page.goto((site / "compose" / "index.html").as_uri())
    # drawn by the Mermaid shipped with the site (into a closed shadow root: its source text is gone)
    page.wait_for_function("() => { const d = document.querySelector('div.mermaid'); return d && "
                           "!d.textContent.includes('flowchart') && d.getBoundingClientRect().height > 200 }",
                           timeout=20000)
    assert "env destroy production --yes" in page.inner_text("article")
    shot(page, "compose-howto.png", full_page=True)
    page.goto((site / "runbooks" / "compose" / "upgrade.html").as_uri())
    text = page.inner_text("article")
    assert "PASSED" in text and "switch_versions" in text
    shot(page, "compose-runbook-upgrade.png", full_page=True)
    page.goto((site / "runbooks" / "compose.html").as_uri())
    assert "Executed from commit" in page.inner_text("article")
    page.close()
