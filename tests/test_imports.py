"""Every module of the package imports on its own, first, in a fresh interpreter: no import cycle
that only shows up in one import order (e.g. ``observe.maintenance`` importing ``restore.ops``
before ``restore.points``, as the maintenance runbook does)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import upgrade_infra

SKIP = {"upgrade_infra.__main__"}  # runs the CLI


def modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(upgrade_infra.__path__, "upgrade_infra.")
                  if m.name not in SKIP)


def _import_alone(name: str) -> tuple[str, str]:
    r = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, timeout=120)
    return name, (r.stderr.strip().splitlines() or ["?"])[-1] if r.returncode else ""


def test_every_module_imports_first():
    names = modules()
    assert len(names) > 100 and "upgrade_infra.restore.ops" in names
    with ThreadPoolExecutor(max_workers=4) as pool:
        failed = {n: err for n, err in pool.map(_import_alone, names) if err}
    assert not failed, failed
