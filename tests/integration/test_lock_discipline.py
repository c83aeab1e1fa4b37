"""One lock discipline on the real reference stack (issue 11, item 5), raced deterministically: the
competing command holds the lock in another process (no timing), or runs inside a progress callback.

- ``stage create`` reads production under a shared lock: refused while an upgrade holds production,
  and an upgrade is refused while a copy of production is under way;
- ``env up``/``env down``/``stage create``/``snapshot create``/``upgrade`` refuse an environment
  whose journal holds a half-done operation (exit 2, naming ``upgrade-infra resume``); ``resume`` closes it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from upgrade_infra.cli import main
from upgrade_infra.core.errors import BadInput, LockHeld
from upgrade_infra.core.journal import Journal
from upgrade_infra.operations import upgrade as up
from upgrade_infra.restore import points as snapshots
from upgrade_infra.staging import lifecycle as staging

HOLD = textwrap.dedent("""
    import sys, time
    from upgrade_infra.core.lock import env_lock
    from upgrade_infra.core.state import StateDir
    kw = {"shared": True} if sys.argv[3] == "shared" else {}  # an exclusive holder is as old as the lock
    with env_lock(StateDir(sys.argv[1]), sys.argv[2], sys.argv[4], **kw):
        print("locked", flush=True)
        sys.stdin.readline()
""")
TRY = textwrap.dedent("""
    import sys
    from upgrade_infra.core.errors import LockHeld
    from upgrade_infra.core.lock import env_lock
    from upgrade_infra.core.state import StateDir
    try:
        with env_lock(StateDir(sys.argv[1]), sys.argv[2], sys.argv[3]):
            print("acquired")
    except LockHeld as e:
        print("refused:", e.message)
""")


class Holder:
    """Another process holding ``env``'s lock until the block ends."""

    def __init__(self, s, env: str, mode: str, command: str) -> None:
        self.args = [sys.executable, "-c", HOLD, str(s.state.root), env, mode, command]

    def __enter__(self):
        self.p = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.p.stdout.readline().strip() == "locked"
        return self.p

    def __exit__(self, *exc):
        self.p.stdin.close()
        self.p.wait(timeout=10)


def _cli(s, *args: str) -> int:
    return main(["--stack", str(s.stack), "--state-dir", str(s.state.root), *args])


def test_stage_create_is_refused_during_an_upgrade_of_production(pa_production, capsys):
    s = pa_production
    with Holder(s, "production", "exclusive", "upgrade production --to assistant=1.1.0") as h:
        with pytest.raises(LockHeld) as e:
            staging.create(s, "race-a")
        assert f"pid {h.pid}" in e.value.message and "upgrade production" in e.value.message
        assert _cli(s, "stage", "create", "race-a") == 3
        assert "upgrade production --to assistant=1.1.0" in capsys.readouterr().err
    assert s.state.load_record("race-a") is None and not s.state.env_dir("race-a").exists()


def test_upgrade_is_refused_while_production_is_being_copied(pa_production):
    s = pa_production
    prod = s.env("production")
    with Holder(s, "production", "shared", "stage create staging --from production"):
        with pytest.raises(LockHeld, match="being read by .*stage create staging --from production"):
            up.upgrade(prod, {"assistant": "1.1.0"})
        with pytest.raises(LockHeld):
            prod.down()
    assert prod.record.versions["assistant"] == "1.0.0" and prod.status().healthy


def test_stage_create_holds_production_shared_during_the_copy(pa_production):
    """Inside the copy (a progress callback), another process cannot take production exclusively."""
    s = pa_production
    seen: list[str] = []

    def progress(phase: str, done: int, total: int | None) -> None:
        if not seen:
            seen.append(subprocess.run([sys.executable, "-c", TRY, str(s.state.root), "production",
                                        "upgrade production --to assistant=1.1.0"],
                                       capture_output=True, text=True, check=True).stdout.strip())

    try:
        r = staging.create(s, "race-b", progress=progress)
        assert r["status"] == "ready"
    finally:
        if s.state.load_record("race-b"):
            staging.destroy(s, "race-b")
    assert seen and seen[0].startswith("refused:") and "stage create race-b --from production" in seen[0]


def test_half_done_environment_refuses_until_resumed(pa_production, capsys):
    s = pa_production
    prod = s.env("production")
    j = Journal(s.state, "production")
    j.start("op-crashed", "probe", command="upgrade production --to assistant=1.1.0")  # a process died here
    j.append("step-begin", "op-crashed", step="switch_versions")
    try:
        for args in (["env", "up", "production"], ["env", "down", "production"], ["stage", "create", "race-c"],
                     ["snapshot", "create", "production"], ["upgrade", "production", "--to", "assistant=1.1.0"]):
            assert _cli(s, *args) == 2, args
            err = capsys.readouterr().err
            assert "upgrade-infra resume production" in err and "op-crashed" in err, (args, err)
        with pytest.raises(BadInput, match="half-done"):
            prod.up()
        with pytest.raises(BadInput):
            snapshots.create(prod)
        assert prod.status().healthy  # nothing was stopped
        assert s.state.load_record("race-c") is None
    finally:
        res = up.recover(prod, command="resume production")
    assert [x["op"] for x in res["recovered"]] == ["op-crashed"]
    assert Journal(s.state, "production").incomplete() is None
    assert _cli(s, "env", "up", "production") == 0  # usable again
