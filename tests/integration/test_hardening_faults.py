"""Faults (issue 11, item 9, with item 2's real case): a first `env up` that fails leaves no environment
behind, on a service that never gets ready and on a full disk; an oversized manifest is refused unparsed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from upgrade_infra.core.errors import ManifestError
from upgrade_infra.operations.session import Session
from upgrade_infra.stack.manifest import load_manifest

from ..conftest import REPO, stop_all, write_stack

TINY = REPO / "tests" / "data" / "tiny" / "stack.yaml"
# a release that prints a bracketed path (Rich would read it as a closing tag) and never gets ready
NEVER_READY = ("{python} -c \"import time; print('fatal: cannot read [/etc/pa.conf] [bold]', flush=True); "
               "time.sleep(60)\"")


def cli(stack: Path, state: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "upgrade_infra", "--stack", str(stack), "--state-dir", str(state),
                           *args], capture_output=True, text=True, timeout=180)


def _ours(state: Path) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(str(state) in a for a in p.info["cmdline"] or []):
                out.append(p)
        except psutil.Error:
            continue
    return out


@pytest.fixture
def never_ready(private_tmp):
    def edit(d):
        d["services"]["web"]["versions"]["2.0"] = {"command": NEVER_READY}
        d["environments"]["production"]["versions"]["web"] = "2.0"

    s = Session(write_stack(private_tmp / "stack", TINY, edit), private_tmp / "state")
    yield s
    stop_all(s)


def test_failed_first_up_leaves_no_record_and_shows_the_service_output_verbatim(never_ready):
    s = never_ready
    state = s.state.root
    r = cli(s.stack, state, "env", "up", "production", "--no-seed")
    assert r.returncode == 3, r.stderr  # ServiceNotReady, not a MarkupError traceback (exit 1)
    assert "Traceback" not in r.stderr and "MarkupError" not in r.stderr
    assert "cannot read [/etc/pa.conf] [bold]" in r.stderr.replace("\n", "")
    # nothing left: no record, no env dir, no processes; `status` lists no environment
    assert not (state / "envs" / "production").exists()
    assert s.state.env_names() == []
    assert _ours(state) == []
    st = cli(s.stack, state, "--json", "status")
    assert st.returncode == 0 and json.loads(st.stdout) == {"environments": []}


def test_a_first_up_on_a_full_disk_leaves_nothing(private_tmp):
    if shutil.which("mount") is None:
        pytest.skip("no mount(8)")
    mnt = private_tmp / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m,mode=0711", "tmpfs", str(mnt)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    s = Session(write_stack(private_tmp / "stack", TINY), mnt / "state")
    try:
        r = cli(s.stack, mnt / "state", "env", "up", "production", "--no-seed")
        assert r.returncode == 3, r.stdout + r.stderr
        assert "Traceback" not in r.stderr
        assert not (mnt / "state" / "envs" / "production").exists()
        assert not (mnt / "state" / "secrets" / "production").exists()
        assert _ours(mnt / "state") == []
    finally:
        stop_all(s)
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_manifest_over_the_limit_is_refused_before_parsing(tmp_path):
    from upgrade_infra.stack.manifest import MAX_MANIFEST_BYTES

    big = tmp_path / "stack.yaml"
    padding = "# " + "x" * 1000 + "\n"
    big.write_text(TINY.read_text() + padding * (MAX_MANIFEST_BYTES // len(padding) + 10))
    t0 = time.monotonic()
    with pytest.raises(ManifestError) as e:
        load_manifest(big)
    assert time.monotonic() - t0 < 0.5
    assert e.value.exit_code == 2 and "over the 1 MB limit" in e.value.message and "not parsed" in e.value.message
    r = cli(big, tmp_path / "state", "--json", "env", "up", "production")
    assert r.returncode == 2 and "1 MB limit" in json.loads(r.stdout)["message"]
