"""The real apps of examples/real/ (Prefect server from PyPI, n8n from npm).

The manifests and the installer's cache check run everywhere and never download. The cycle tests
(upgrade then rollback, data exact) run only when both releases of the app are already cached in
~/.cache/upgrade-infra/real-apps (`nox -s real-apps` fills it): `nox -s tests` never downloads an app.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import REPO, write_stack
from upgrade_infra.stack.manifest import load_manifest

REAL = REPO / "examples" / "real"


def _drive():
    spec = importlib.util.spec_from_file_location("real_apps_drive", REAL / "drive.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


drive = _drive()


def cached(app: str) -> bool:
    spec = drive.APPS[app]
    return all(subprocess.run([sys.executable, str(REAL / "install.py"), app, spec[k], "--check"]).returncode == 0
               for k in ("from", "to"))


@pytest.mark.parametrize("app", sorted(drive.APPS))
def test_manifest_declares_both_releases(app):
    m = load_manifest(REAL / app / "stack.yaml")
    spec = drive.APPS[app]
    svc = m.services[spec["service"]]
    assert {spec["from"], spec["to"]} <= set(svc.versions)
    assert m.environments["production"].versions[spec["service"]] == spec["from"]
    assert svc.migrates_on_start and svc.install and "install.py" in svc.install
    assert m.seed is not None
    assert any(c.smoke for c in m.checks) and any(c.suite == "workflow" for c in m.checks)


def test_install_check_never_downloads(tmp_path):
    env = {**os.environ, "UPGRADE_INFRA_REAL_APPS_CACHE": str(tmp_path)}
    for app in drive.APPS:
        r = subprocess.run([sys.executable, str(REAL / "install.py"), app, "0.0.0", "--check"], env=env,
                           capture_output=True, timeout=30)
        assert r.returncode == 1
    assert not any(tmp_path.iterdir())


def _private_stack(app: str) -> tuple[Path, Path]:
    root = Path(tempfile.mkdtemp(prefix=f"uinfra-real-{app}-"))
    os.chmod(root, 0o711)
    stack = write_stack(root / "stack", REAL / app / "stack.yaml")
    (root / "install.py").symlink_to(REAL / "install.py")  # the stacks install with {stack_dir}/../install.py
    return stack, root / "state"


@pytest.mark.slow
@pytest.mark.parametrize("app", ["prefect", "n8n"])
def test_upgrade_then_rollback_is_exact(app):
    if not cached(app):
        pytest.skip(f"{app} releases not cached in ~/.cache/upgrade-infra/real-apps (run `nox -s real-apps` "
                    f"once to install them; this test never downloads)")
    stack, state = _private_stack(app)
    try:
        res = drive.rollbacks(app, 1, stack, state)
    finally:
        drive.cleanup(drive.Transcript(app, stack, state))
        shutil.rmtree(state.parent, ignore_errors=True)
    assert res["rounds"] == 1, res
    r = res["results"][0]
    assert r["upgrade_exit"] == 0 and r["rollback_exit"] == 0, res["transcript"]
    assert r["exact"], r["differences"]
