"""``kind: browser`` - load a page in headless Chromium; assert visible text and elements; screenshot.

    - name: assistant status page
      kind: browser
      suite: ux
      service: assistant
      path: /status
      expect:
        text: ["All systems operational"]
        selectors: ["#overall.ok", "table"]

Uses Playwright's sync API with Debian's Chromium (``/usr/bin/chromium``, package ``chromium``;
``$UPGRADE_INFRA_CHROMIUM`` overrides) and a fresh user data dir per check. The screenshot is saved
into the report dir (``screenshots/<check>.png``) whether the check passes or not.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from upgrade_infra.core.redact import scrub
from upgrade_infra.validation.checks.base import (
    CheckContext,
    KindConfig,
    Outcome,
    register_kind,
    template_issues,
)
from upgrade_infra.validation.checks.request import RequestSpec, target_url

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class BrowserExpect(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: int | None = Field(None, description="status of the page's response (default: any 2xx)")
    title_contains: str | None = None
    text: list[str] = Field([], description="texts that must be visible on the page")
    absent_text: list[str] = Field([], description="texts that must not be visible")
    selectors: list[str] = Field([], description="CSS selectors that must match a visible element")


class BrowserConfig(KindConfig):
    timeout_s: float = Field(30, gt=0, le=600)
    path: str | None = Field(None, description="path on the check's service (templated)")
    url: str | None = Field(None, description="full URL instead of service+path (templated)")
    viewport: dict[str, int] = {"width": 1280, "height": 800}
    screenshot: bool = True
    expect: BrowserExpect = Field(default_factory=BrowserExpect)


def chromium_path() -> str:
    return os.environ.get("UPGRADE_INFRA_CHROMIUM", CHROMIUM)


def slug(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", name).strip("-") or "check"


def browser_issues(spec, cfg: BrowserConfig, m) -> list:
    out = [] if (cfg.url or spec.service) else [((), "needs a target: 'service' (+ 'path') or 'url'", None)]
    return out + template_issues(("path",), cfg.path, m) + template_issues(("url",), cfg.url, m)


@register_kind("browser", BrowserConfig, exclusive=True, semantic=browser_issues)
def run_browser(spec, cfg: BrowserConfig, ctx: CheckContext) -> Outcome:
    exe = chromium_path()
    if not Path(exe).exists():
        return Outcome.broken(f"Chromium not found at {exe}: install Debian's `chromium` package "
                              "(apt-get install -y chromium) or set UPGRADE_INFRA_CHROMIUM")
    try:
        from playwright.sync_api import Error as PwError
        from playwright.sync_api import sync_playwright
    except ImportError:
        return Outcome.broken("the browser check needs Playwright: pip install 'upgrade-infra[browser]'")
    url = target_url(RequestSpec(path=cfg.path, url=cfg.url), ctx, {}, spec.service)
    shot = ctx.report_dir / "screenshots" / f"{slug(spec.name)}.png"
    profile = tempfile.mkdtemp(prefix="uinfra-chromium-")
    ms = cfg.timeout_s * 1000
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch_persistent_context(
                profile, executable_path=exe, headless=True, args=CHROMIUM_ARGS, viewport=cfg.viewport,
                timeout=ms)
            try:
                return _visit(browser, url, cfg, shot, ms)
            finally:
                browser.close()
    except PwError as e:
        return Outcome.broken(scrub(f"browser could not load {url}: {str(e).strip().splitlines()[0]}"), url=url)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def _visit(browser, url: str, cfg: BrowserConfig, shot: Path, ms: float) -> Outcome:
    page = browser.pages[0] if browser.pages else browser.new_page()
    page.set_default_timeout(min(ms, 5000))
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text[:200]) if m.type == "error" else None)
    resp = page.goto(url, wait_until="load", timeout=ms)
    status = resp.status if resp else None
    x, bad = cfg.expect, []
    if status is None or not (status == x.status if x.status else 200 <= status < 300):
        bad.append(f"GET {url} returned {status} (expected {x.status or '2xx'})")
    title = page.title()
    if x.title_contains and x.title_contains not in title:
        bad.append(f"title {title!r} does not contain {x.title_contains!r}")
    for t in x.text:
        if not _visible(page.get_by_text(t)):
            bad.append(f"text {t!r} is not visible")
    for t in x.absent_text:
        if _visible(page.get_by_text(t), wait_ms=0):
            bad.append(f"text {t!r} is visible but must not be")
    for sel in x.selectors:
        if not _visible(page.locator(sel)):
            bad.append(f"no visible element matches {sel!r}")
    details = {"url": url, "status": status, "title": title, "console_errors": console_errors[:5]}
    if cfg.screenshot:
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
        details["screenshot"] = str(shot)
    if bad:
        return Outcome.fail("; ".join(bad), **details)
    return Outcome(True, f"/{url.split('/', 3)[-1]} -> {status}, {len(x.text)} text(s) and {len(x.selectors)} element(s) visible",
                   details)


def _visible(locator, wait_ms: int = 1000) -> bool:
    try:
        if not wait_ms:
            return locator.first.is_visible()
        locator.first.wait_for(state="visible", timeout=wait_ms)
        return True
    except Exception:  # noqa: BLE001 - playwright TimeoutError: not visible
        return False
