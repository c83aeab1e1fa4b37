"""The downgrade guard: the tool records which release last migrated each database; an upgrade to an
older release is refused (exit 2, nothing changed, pointing to `rollback`) unless the service declares a
`downgrade` command (then it runs before the older release starts) or --allow-downgrade is given."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from upgrade_infra.core.journal import Journal
from upgrade_infra.operations import upgrade
from upgrade_infra.operations.session import Session
from upgrade_infra.restore.fingerprint import fingerprint

from ..conftest import running_stack, stop_all, write_stack
from .conftest import LEDGER


def _cli(s: Session, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "upgrade_infra", "--stack", str(s.stack), "--state-dir",
                           str(s.state.root), "--json", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "250"})


def test_upgrade_to_an_older_release_is_refused_unless_allowed():
    with running_stack(LEDGER, "uinfra-downgrade-") as s:
        env = s.env("production")
        assert upgrade.upgrade(env, {"ledger": "2.0"}, watch_s=0)["outcome"] == "succeeded"
        ops = len(Journal(s.state, "production").operations())
        r = _cli(s, "upgrade", "production", "--to", "ledger=1.0", "--watch", "0")
        assert r.returncode == 2, r.stderr  # the old code started 1.0 on 2.0's schema (exit 0)
        from upgrade_infra.operations import migrated

        assert migrated.load(s.env("production"))["ledger"]["version"] == "2.0"
        err = json.loads(r.stdout.strip().splitlines()[-1])
        assert "refusing to downgrade ledger to 1.0" in err["message"] and "last migrated by ledger 2.0" in err["message"]
        assert "upgrade-infra rollback production" in err["fix"] and "--allow-downgrade" in err["fix"]
        env = s.env("production")
        assert env.record.versions == {"ledger": "2.0"} and env.status().healthy  # nothing changed
        assert len(Journal(s.state, "production").operations()) == ops
        r = _cli(s, "upgrade", "production", "--to", "ledger=1.0", "--watch", "0", "--allow-downgrade")
        assert r.returncode == 0, r.stderr
        assert s.env("production").record.versions == {"ledger": "1.0"}
        assert migrated.load(s.env("production"))["ledger"]["version"] == "2.0"  # the schema is still 2.0's
        # a rollback brings the restore point's databases back: migrated by what the restore point ran
        assert _cli(s, "rollback", "production").returncode == 0
        assert migrated.load(s.env("production"))["ledger"]["version"] == "2.0"
        assert _cli(s, "rollback", "production").returncode == 0
        assert migrated.load(s.env("production"))["ledger"]["version"] == "1.0"


def test_a_declared_downgrade_command_runs_before_the_older_release_starts():
    def edit(data):
        data["services"]["ledger"]["downgrade"] = "{python} {stack_dir}/ledger.py downgrade --to {to_version}"

    root = Path(tempfile.mkdtemp(prefix="uinfra-downgrade-cmd-"))
    os.chmod(root, 0o711)
    s = Session(write_stack(root / "stack", LEDGER, edit), root / "state")
    from upgrade_infra.operations import migrated

    try:
        env = s.env("production")
        env.up()
        before = fingerprint(env)
        assert upgrade.upgrade(env, {"ledger": "2.0"}, watch_s=0)["outcome"] == "succeeded"
        res = upgrade.upgrade(s.env("production"), {"ledger": "1.0"}, watch_s=0)
        assert res["outcome"] == "succeeded", res.get("error")
        step = next(t for t in res["steps"] if t["step"] == "downgrade_schema")
        assert step["status"] == "ok"
        env = s.env("production")
        assert fingerprint(env).equal(before), [str(d) for d in fingerprint(env).diff(before)]
        assert migrated.load(env)["ledger"]["version"] == "1.0"
    finally:
        stop_all(s)
        shutil.rmtree(root, ignore_errors=True)
