"""A third-party package adds a check kind and a restore-point strategy through real entry points.

The package (``acme_upgrade_plugins``) is written into a temporary directory with its own
``.dist-info`` (``entry_points.txt`` in the ``upgrade_infra.check_kinds`` and
``upgrade_infra.restore_strategies`` groups) and put on ``PYTHONPATH`` of the CLI it runs: nothing in
upgrade-infra names it, and the registries are not touched. A stack.yaml uses both by name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ..conftest import REPO, write_stack

TINY = REPO / "tests" / "data" / "tiny" / "stack.yaml"

CHECKS = '''
"""A check kind from another package: a file (a rendered path) exists."""
import os

from pydantic import Field

from upgrade_infra.validation.checks.base import KindConfig, Outcome, register_kind


class FileExistsConfig(KindConfig):
    path: str = Field(description="file that must exist; placeholders such as {stack_dir} are rendered")


@register_kind("file-exists", FileExistsConfig)
def file_exists(spec, cfg, ctx):
    p = ctx.render(cfg.path)
    return Outcome(True, f"{p} exists") if os.path.exists(p) else Outcome.fail(f"{p} is missing")
'''

RESTORE = '''
"""A restore-point strategy from another package: dumps, plus a marker of who took them."""
from upgrade_infra.restore.dump import DumpStrategy


class AcmeDump(DumpStrategy):
    def capture(self, env, rp, rp_dir):
        super().capture(env, rp, rp_dir)
        (rp_dir / "acme.txt").write_text(f"taken by {self.name}\\n")
'''

ENTRY_POINTS = """[upgrade_infra.check_kinds]
file-exists = acme_upgrade_plugins.checks

[upgrade_infra.restore_strategies]
acme-dump = acme_upgrade_plugins.restore:AcmeDump
"""


def make_plugin(site: Path) -> Path:
    """The package and its distribution metadata, as pip would leave them in site-packages."""
    pkg = site / "acme_upgrade_plugins"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "checks.py").write_text(CHECKS)
    (pkg / "restore.py").write_text(RESTORE)
    info = site / "acme_upgrade_plugins-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-upgrade-plugins\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return site


def _edit(data) -> None:
    data.setdefault("policies", {})["snapshot_strategy"] = "acme-dump"
    data["checks"] = [{"name": "manifest present", "kind": "file-exists", "suite": "plugin", "smoke": True,
                       "path": "{stack_dir}/stack.yaml"}]


def cli(stack: Path, state: Path, *args: str, plugins: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if plugins is not None:
        env["PYTHONPATH"] = str(plugins)
    return subprocess.run([sys.executable, "-m", "upgrade_infra", "--stack", str(stack), "--state-dir", str(state),
                           "--json", *args], env=env, capture_output=True, text=True, timeout=600)


def test_third_party_check_kind_and_restore_strategy(private_tmp):
    plugins = make_plugin(private_tmp / "site-packages")
    stack = write_stack(private_tmp / "stack", TINY, _edit)
    state = private_tmp / "state"

    # without the package the manifest names a kind nobody registered: exit 2, the known kinds listed
    r = cli(stack, state, "status")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "unknown check kind 'file-exists'" in r.stdout and "http" in r.stdout

    try:
        r = cli(stack, state, "env", "up", "production", plugins=plugins)
        assert r.returncode == 0, r.stdout + r.stderr
        r = cli(stack, state, "validate", "production", plugins=plugins)
        assert r.returncode == 0, r.stdout + r.stderr
        res = {c["name"]: c for c in json.loads(r.stdout)["results"]}
        assert res["manifest present"]["passed"] and res["manifest present"]["message"] == f"{stack} exists"

        r = cli(stack, state, "snapshot", "create", "production", plugins=plugins)  # policies.snapshot_strategy
        assert r.returncode == 0, r.stdout + r.stderr
        rp = json.loads(r.stdout)["restore_point"]
        assert rp["strategy"] == "acme-dump"
        assert (state / "restore-points" / rp["id"] / "acme.txt").read_text() == "taken by acme-dump\n"

        # the whole rollback runs on the plugin's strategy (stage and swap inherited from dump)
        r = cli(stack, state, "rollback", "production", "--to", rp["id"], plugins=plugins)
        assert r.returncode == 0, r.stdout + r.stderr
        out = json.loads(r.stdout)
        assert out["strategy"] == "acme-dump" and out["verified"]
    finally:
        r = cli(stack, state, "env", "down", "production", plugins=plugins)
        assert r.returncode == 0, r.stdout + r.stderr
