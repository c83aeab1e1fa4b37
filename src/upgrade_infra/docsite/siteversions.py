"""A versioned docs site that works from files (file://) and from any static web server.

The layout is mike's, without its git branch and without ``fetch``::

    site/
      index.html          redirects to the newest version's home
      versions.json       [{"version", "title", "aliases", "published_at", "commit"}, ...] (mike's format + extras)
      versions.js         the same list (with each version's pages) as a script: no fetch, so it loads from file://
      0.2.0/ …            one full MkDocs build per published version
      0.1.0/ …
      latest/ …           one small redirect page per page of the newest version (the same page, not the home)

Every page loads ``../versions.js`` with a plain ``<script>`` (allowed from file://, unlike ``fetch``)
and renders Material's own version-selector markup from it; the list inlined at build time is the
fallback when the page is opened without the site root around it. Re-publishing a version replaces
it, other versions stay, at most ``keep`` versions are kept (the oldest by version order are removed,
never the one being published). Only the site directory is written, and a version is swapped in with
renames inside it, so a reader never sees a half-written version. Only a passing gate calls
:func:`install` (``publish.publish``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from upgrade_infra.core.errors import BadInput

LATEST = "latest"
MANIFEST = "versions.json"
SCRIPT = "versions.js"
DEFAULT_KEEP = 10
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
_STAGING = ".incoming-"
_RETIRED = ".retired-"


def default_version() -> str:
    """``$UPGRADE_INFRA_DOCS_VERSION`` (CI: the tag being built) or the package version."""
    from upgrade_infra import __version__

    return os.environ.get("UPGRADE_INFRA_DOCS_VERSION") or __version__


def check_name(version: str) -> str:
    if not _NAME.match(version) or version == LATEST:
        raise BadInput(f"{version!r} cannot name a docs version",
                       fix="use letters, digits and . _ + - (e.g. 1.2.0 or 1.3.0rc1), not 'latest'")
    return version


def sort_key(version: str) -> tuple:
    """PEP 440 order where the name is a version (1.10.0 after 1.9.0, 1.3.0rc1 before 1.3.0);
    other names sort below every release, by name."""
    try:
        from packaging.version import InvalidVersion, Version

        try:
            return (1, Version(version), ())
        except InvalidVersion:
            pass
    except ImportError:  # packaging missing: natural order (numbers as numbers)
        parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[._+-]", version))
        return (1, (), parts)
    return (0, (), version)


def read(site: Path) -> list[dict[str, Any]] | None:
    """The published versions, newest first; ``None`` when ``site`` is not a versioned site."""
    try:
        data = json.loads((site / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return [v for v in data if isinstance(v, dict) and _NAME.match(str(v.get("version", "")))
            and (site / v["version"]).is_dir()]


def version_root(site: Path) -> Path:
    """Where the newest version's pages are (``site`` itself for an unversioned site)."""
    versions = read(site)
    return site / versions[0]["version"] if versions else site


def plan(existing: list[dict[str, Any]] | None, version: str, keep: int = DEFAULT_KEEP, *,
         commit: str | None = None, title: str | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """The version list after publishing ``version`` (newest first) and the versions to remove."""
    if keep < 1:
        raise BadInput(f"--keep-versions {keep}: at least the published version is kept", fix="pass 1 or more")
    check_name(version)
    entry = {"version": version, "title": title or version, "aliases": [],
             "published_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": commit}
    others = [dict(v, aliases=[]) for v in (existing or []) if v["version"] != version]
    ordered = sorted([entry, *others], key=lambda v: sort_key(v["version"]), reverse=True)
    kept = ordered[:keep] if entry in ordered[:keep] else [*ordered[:keep - 1], entry]
    kept.sort(key=lambda v: sort_key(v["version"]), reverse=True)
    kept[0]["aliases"] = [LATEST]
    removed = [v["version"] for v in ordered if v not in kept]
    return kept, removed


def selector_data(versions: list[dict[str, Any]], current: str) -> dict[str, Any]:
    """What the theme override inlines into every page at build time (``extra.docs_versions``)."""
    return {"current": current, "versions": [{"version": v["version"], "title": v["title"],
                                              "aliases": v["aliases"]} for v in versions]}


def set_extra(text: str, key: str, value: Any) -> str:
    """``mkdocs.yml`` text with ``extra.<key>`` set to ``value`` (written as JSON, which is YAML)."""
    line = f"  {key}: {json.dumps(value)}\n"
    if re.search(r"^extra:\s*$", text, re.M):
        return re.sub(r"^extra:\s*\n", lambda m: m.group(0) + line, text, count=1, flags=re.M)
    return text.rstrip("\n") + "\n\nextra:\n" + line


def install(built: Path, site: Path, version: str, versions: list[dict[str, Any]], removed: list[str]) -> None:
    """Move ``built`` (the build of ``version``) into ``site/<version>/``, replacing an earlier build of
    it; drop ``removed``; rewrite the alias and the lists (``versions``, from :func:`plan`)."""
    site.mkdir(parents=True, exist_ok=True)
    legacy = [] if (site / MANIFEST).exists() else [p for p in site.iterdir() if not p.name.startswith(".")]
    incoming = site / f"{_STAGING}{version}"
    _rmtree(incoming)
    shutil.move(str(built), str(incoming))
    _swap(incoming, site / version)
    for name in [*removed, *(p.name for p in legacy)]:  # an unversioned site (before versions) is replaced
        if name in {v["version"] for v in versions}:
            continue
        target = site / name
        if target.is_dir() and not target.is_symlink():
            _rmtree_via_rename(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
    write_alias(site, versions[0]["version"])
    write_lists(site, versions)


def write_alias(site: Path, version: str) -> None:
    """``latest/`` holds one redirect page per page of ``version``, to the same page there; the root
    ``index.html`` redirects to ``version``'s home."""
    stubs = site / f"{_STAGING}{LATEST}"
    _rmtree(stubs)
    for page in sorted((site / version).rglob("*.html")):
        rel = page.relative_to(site / version)
        up = "../" * len(rel.parts)
        _write(stubs / rel, redirect_html(f"{up}{version}/{rel.as_posix()}"))
    _swap(stubs, site / LATEST)
    _write(site / "index.html", redirect_html(f"{version}/index.html"))  # one hop, not two


def redirect_html(target: str) -> str:
    t = json.dumps(target)
    return ("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Redirecting…</title>\n"
            f"<meta http-equiv=\"refresh\" content=\"0; url={target}\">\n"
            f"<script>location.replace({t} + location.hash)</script>\n"
            f"</head><body><p>Moved to <a href=\"{target}\">{target}</a>.</p></body></html>\n")


def write_lists(site: Path, versions: list[dict[str, Any]]) -> None:
    """``versions.json`` (mike's format, for tools and servers) and ``versions.js`` (for pages: with the
    pages of each version, so switching lands on the same page or, where it does not exist, the home)."""
    pages = {v["version"]: sorted(p.relative_to(site / v["version"]).as_posix()
                                  for p in (site / v["version"]).rglob("*.html")) for v in versions}
    _write(site / SCRIPT, "window.__uinfraVersions = " + json.dumps(
        {"versions": [dict(v, pages=pages[v["version"]]) for v in versions]}) + ";\n")
    _write(site / MANIFEST, json.dumps(versions, indent=2) + "\n")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(text)  # modes follow the tool's umask, like the rest of the site
    os.replace(tmp, path)


def _swap(new: Path, target: Path) -> None:
    """``new`` becomes ``target``; the previous ``target`` is renamed aside first, then removed."""
    if target.exists() or target.is_symlink():
        if target.is_dir() and not target.is_symlink():
            _rmtree_via_rename(target, then=lambda: new.rename(target))
            return
        target.unlink()
    new.rename(target)


def _rmtree_via_rename(target: Path, then=None) -> None:
    aside = target.with_name(f"{_RETIRED}{target.name}")
    _rmtree(aside)
    target.rename(aside)
    if then:
        then()
    _rmtree(aside)


def _rmtree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)
