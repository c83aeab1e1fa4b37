"""Install one release of a real app from its public registry, cached under the user's cache dir.

Used as the ``install`` command of the stacks in ``examples/real/``::

    install: "{python} {stack_dir}/../install.py prefect {version} {install_dir}"

The release is installed once into ``~/.cache/upgrade-infra/real-apps/<app>/<version>/`` (PyPI into a
virtualenv, npm into a ``node_modules`` tree) and linked into the tool's ``{install_dir}`` as ``app``;
later installs (another state dir, a rerun of ``nox -s real-apps``) only make the link.
``--check`` exits 0 when the release is cached, 1 otherwise, and never downloads.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

MARKER = ".complete"
DEPS_WINDOW_DAYS = 1  # dependencies released up to a day after the app: what its own release ran on


def cache_root() -> Path:
    return Path(os.environ.get("UPGRADE_INFRA_REAL_APPS_CACHE")
                or Path(os.environ.get("HOME", "~")).expanduser() / ".cache" / "upgrade-infra" / "real-apps")


def release_date(package: str, version: str) -> datetime:
    """When ``package`` ``version`` was uploaded to PyPI (its JSON API)."""
    with urllib.request.urlopen(f"https://pypi.org/pypi/{package}/json", timeout=120) as r:
        files = json.load(r)["releases"][version]
    return min(datetime.fromisoformat(f["upload_time_iso_8601"].replace("Z", "+00:00")) for f in files)


def install_prefect(version: str, into: Path) -> None:
    # the base interpreter, not this (possibly virtual) environment's, so the app's venv stands alone
    base = Path(getattr(sys, "_base_executable", sys.executable))
    subprocess.run([str(base), "-m", "venv", str(into)], check=True)
    pip = [str(into / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "--quiet"]
    # PyPI only: no local wheel dirs or mirrors from the machine's pip config (they carry no upload
    # times, so --uploaded-prior-to could not filter them); a CA bundle given in PIP_CERT still applies
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL")}
    env["PIP_CONFIG_FILE"] = os.devnull
    subprocess.run([*pip, "install", "pip>=26"], check=True, env=env)  # 26 brings --uploaded-prior-to
    # Prefect pins few upper bounds: today's FastAPI breaks older releases at import
    # (`Body(min_items=...)`). Install each release with the dependencies of its time, as its users did.
    until = release_date("prefect", version) + timedelta(days=DEPS_WINDOW_DAYS)
    subprocess.run([*pip, "install", "--uploaded-prior-to", until.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    f"prefect=={version}",
                    # prefect/workers/base.py imports importlib_metadata on every Python, but the
                    # release requires it only below 3.10 (upstream packaging bug)
                    "importlib_metadata"], check=True, env=env)


def install_n8n(version: str, into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    # n8n-nodes-base depends on xlsx as a tarball URL on cdn.sheetjs.com, which is not a registry (and
    # not reachable from machines that only reach npm): the registry's last xlsx release stands in
    # (only the Spreadsheet File node uses it)
    (into / "package.json").write_text(json.dumps({
        "name": "n8n-release", "private": True, "dependencies": {"n8n": version},
        "overrides": {"xlsx": "0.18.5"}}, indent=2))
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", "--omit=dev"],
                   cwd=into, check=True)


INSTALLERS = {"prefect": install_prefect, "n8n": install_n8n}


def cached(app: str, version: str) -> Path | None:
    d = cache_root() / app / version
    return d if (d / MARKER).exists() else None


def ensure(app: str, version: str) -> Path:
    root = cache_root() / app
    root.mkdir(parents=True, exist_ok=True)
    d = root / version
    with open(root / f".{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two environments installing the same release wait for one
        if (d / MARKER).exists():
            return d
        shutil.rmtree(d, ignore_errors=True)
        t0 = time.monotonic()
        INSTALLERS[app](version, d)
        seconds = time.monotonic() - t0
        size = sum(f.stat().st_size for f in d.rglob("*") if f.is_file() and not f.is_symlink())
        (d / MARKER).write_text(json.dumps({"seconds": round(seconds, 1), "bytes": size}))
        print(f"installed {app} {version} in {seconds:.0f}s ({size / 1e6:.0f} MB) into {d}", file=sys.stderr)
        return d


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("app", choices=sorted(INSTALLERS))
    ap.add_argument("version")
    ap.add_argument("install_dir", nargs="?", help="the tool's {install_dir}: receives an `app` link")
    ap.add_argument("--check", action="store_true", help="exit 0 if cached, 1 if not; never downloads")
    a = ap.parse_args()
    if a.check:
        return 0 if cached(a.app, a.version) else 1
    d = ensure(a.app, a.version)
    if a.install_dir:
        link = Path(a.install_dir) / "app"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(d, target_is_directory=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
