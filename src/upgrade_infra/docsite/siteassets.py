"""Assets the site needs offline. Material loads Mermaid from a CDN unless ``mermaid`` is already
defined, and its offline plugin loads the ``iframe-worker`` shim (what runs the search worker on
pages opened from files) from unpkg.com; the machines that build and read this site may have no
internet: ship both with the site.

The scripts come from the npm registry (``npm pack``), are cached under ``.cache/``, and are copied into
the built docs as ``javascripts/mermaid.min.js`` (``extra_javascript`` in mkdocs.yml) and
``javascripts/iframe-worker-shim.js`` (``extra.polyfills``: the offline plugin then adds no CDN URL).
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from pathlib import Path

from upgrade_infra.core import runner
from upgrade_infra.core.errors import BadInput

MERMAID = "mermaid@11.17.2"
MEMBER = "package/dist/mermaid.min.js"


def npm_pack_argv(spec: str, dest: Path) -> list[str]:
    return ["npm", "pack", spec, "--silent", "--pack-destination", str(dest)]


IFRAME_WORKER = "iframe-worker@1.0.4"
IFRAME_WORKER_MEMBER = "package/shim/index.js"


def mermaid_js(cache: Path) -> Path:
    return npm_file(MERMAID, MEMBER, cache / f"{MERMAID.replace('@', '-')}.min.js")


def iframe_worker_js(cache: Path) -> Path:
    return npm_file(IFRAME_WORKER, IFRAME_WORKER_MEMBER, cache / f"{IFRAME_WORKER.replace('@', '-')}-shim.js")


def npm_file(spec: str, member: str, target: Path) -> Path:
    """``member`` of the npm package ``spec``, cached at ``target``."""
    if target.exists():
        return target
    if shutil.which("npm") is None:
        raise BadInput(f"npm not found: the site ships {spec.split('@')[0]} from the npm registry",
                       fix="apt-get install npm (or install Node.js), then build again")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="uinfra-npm-") as tmp:
        runner.run(npm_pack_argv(spec, Path(tmp)), cwd=tmp, timeout=300)
        tgz = next(Path(tmp).glob("*.tgz"))
        with tarfile.open(tgz) as tar:
            src = tar.extractfile(member)
            if src is None:
                raise BadInput(f"{tgz.name} has no {member}", fix=f"pin another {spec.split('@')[0]} version")
            part = target.with_suffix(".part")
            part.write_bytes(src.read())
            part.replace(target)
    return target

def copy_page_sources(docs: Path, site: Path) -> int:
    """Every Markdown page's source as ``_sources/<page>.md.txt`` in the built site (Sphinx's convention:
    a browser shows .txt as text, from files and from any server), for the "view source" link pages
    show when no repository URL is configured. Snippets (``includes/``) are not pages."""
    n = 0
    for f in sorted(docs.rglob("*.md")):
        rel = f.relative_to(docs)
        if rel.parts[0] == "includes":
            continue
        dst = site / "_sources" / rel.parent / f"{rel.name}.txt"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, dst)  # follows the build's symlinks: the text, not a link into the repository
        n += 1
    return n
