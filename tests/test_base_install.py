"""The README's plain install (no extras) runs every command: a fresh venv with only the base install.

The base dependencies are kept as wheels in a cache dir keyed by their list (built once with
``pip wheel``), so later runs install offline in seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest

from .conftest import REPO, write_stack

pytestmark = pytest.mark.slow
TOOLS = ["setuptools>=68", "wheel"]


def _wheelhouse() -> Path:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    key = hashlib.sha256("\n".join([sys.version, *TOOLS, *deps]).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "upgrade-infra" / "base-wheels"
    house = cache / key
    if not (house / ".complete").exists():
        house.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "-w", str(house), *TOOLS, *deps],
                       check=True, timeout=900)
        (house / ".complete").write_text("\n".join(deps))
    return house


@pytest.fixture(scope="module")
def base_venv(tmp_path_factory) -> Path:
    """A venv (no pip of its own: this interpreter's pip installs into it, without byte-compiling)."""
    root = tmp_path_factory.mktemp("base-venv") / "venv"
    venv.create(root, with_pip=False)
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pip = [sys.executable, "-m", "pip", "--python", str(root / "bin" / "python"), "install", "-q", "--no-compile",
           "--no-index", "--find-links", str(_wheelhouse())]
    subprocess.run([*pip, *TOOLS, *deps], check=True, timeout=600)
    subprocess.run([*pip, "--no-deps", "--no-build-isolation", "-e", str(REPO)], check=True, timeout=600)
    return root


def _cli(venv_dir: Path, *args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv_dir / "bin" / "upgrade-infra"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


def test_base_install_has_no_extras(base_venv):
    py = str(base_venv / "bin" / "python")
    out = subprocess.run([py, "-c", "import importlib.util as u; print([m for m in ('matplotlib', 'pytest', "
                          "'playwright', 'fastapi', 'mkdocs') if u.find_spec(m)])"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_command_runs_after_the_plain_install(base_venv, private_tmp):
    stack = write_stack(private_tmp / "stack")
    cwd = stack.parent
    helped = _cli(base_venv, "--help", cwd=cwd)
    assert helped.returncode == 0, helped.stderr
    assert all(c in helped.stdout for c in ("env", "stage", "snapshot", "migrate", "validate", "runbook", "exec"))
    st = _cli(base_venv, "status", cwd=cwd)
    assert st.returncode == 0, st.stderr
    js = _cli(base_venv, "--json", "status", cwd=cwd)
    assert js.returncode == 0, js.stderr
    assert json.loads(js.stdout) == {"environments": []}
    listed = _cli(base_venv, "--json", "runbook", "list", cwd=private_tmp)
    assert listed.returncode == 0, listed.stderr
    assert "rollback" in [r["name"] for r in json.loads(listed.stdout)]


def test_missing_extra_is_named(base_venv):
    py = str(base_venv / "bin" / "python")
    r = subprocess.run([py, "-c", "from upgrade_infra.docsite import rollback_charts; rollback_charts.timeline({}, 'x')"],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "upgrade-infra[docs]" in r.stderr


def test_a_regular_install_ships_the_runbooks(tmp_path):
    """Not editable: the runbooks land in <prefix>/share/upgrade-infra/runbooks, where
    ``runbooks.installed_dir()`` looks (checked with that interpreter's sysconfig)."""
    root = tmp_path / "venv"
    venv.create(root, with_pip=False)
    py = str(root / "bin" / "python")
    subprocess.run([sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-compile", "--no-deps",
                    "--no-index", "--find-links", str(_wheelhouse()), *TOOLS], check=True, timeout=300)
    subprocess.run([sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-compile", "--no-deps",
                    "--no-index", "--no-build-isolation", str(REPO)], check=True, timeout=300)
    data = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_path('data'))"], capture_output=True,
                          text=True, check=True).stdout.strip()
    shipped = sorted(p.name for p in (Path(data) / "share" / "upgrade-infra" / "runbooks").glob("*.ipynb"))
    assert shipped == sorted(p.name for p in (REPO / "runbooks").glob("*.ipynb"))
