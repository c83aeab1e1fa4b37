"""The browser kind: Debian's Chromium through Playwright, visible text/elements, a screenshot."""

from __future__ import annotations

from pathlib import Path

import pytest

from upgrade_infra.validation.checks.browser import chromium_path

from . import checks_support
from .checks_support import run_checks

make_env, tiny_server = checks_support.make_env, checks_support.tiny_server  # fixtures

pytestmark = pytest.mark.skipif(not Path(chromium_path()).exists(),
                                reason="needs Debian's chromium (apt-get install -y chromium)")


def test_page_passes_and_fails_with_screenshots(make_env, tmp_path):
    env = make_env([
        {"name": "page ok", "kind": "browser", "service": "web", "path": "/page",
         "expect": {"text": ["Hello page"], "selectors": ["h1#t"], "absent_text": ["Internal error"]}},
        {"name": "page wrong", "kind": "browser", "service": "web", "path": "/page", "timeout_s": 10,
         "expect": {"text": ["Goodbye"], "selectors": [".missing"], "absent_text": ["All good"]}},
        {"name": "page 404", "kind": "browser", "service": "web", "path": "/nope", "screenshot": False},
    ])
    r = run_checks(env, tmp_path)
    assert r["page ok"].passed, r["page ok"].message
    shot = Path(r["page ok"].details["screenshot"])
    assert shot == tmp_path / "screenshots" / "page-ok.png" and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    wrong = r["page wrong"]
    assert not wrong.passed and not wrong.error
    assert wrong.message == ("text 'Goodbye' is not visible; text 'All good' is visible but must not be; "
                             "no visible element matches '.missing'")
    assert Path(wrong.details["screenshot"]).exists()  # a failing page is photographed too
    assert "returned 404" in r["page 404"].message and "screenshot" not in r["page 404"].details


def test_missing_chromium_is_a_clear_error(make_env, tmp_path, monkeypatch):
    monkeypatch.setenv("UPGRADE_INFRA_CHROMIUM", "/no/chromium")
    env = make_env([{"name": "p", "kind": "browser", "service": "web", "path": "/page"}])
    res = run_checks(env, tmp_path)["p"]
    assert res.error and "Chromium not found at /no/chromium" in res.message and "apt-get install -y chromium" in res.message
