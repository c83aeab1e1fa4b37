"""Names and paths (issue 11, item 1): every name that becomes a path is checked by one pattern, and
every delete under the state dir goes through one guard (``fsutil.inside``). Planted ``..``, absolute
paths and symlinks never make the tool delete or write outside its state dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from upgrade_infra.core import fsutil
from upgrade_infra.core.errors import BadInput, ManifestError, StateDirError
from upgrade_infra.core.state import StateDir
from upgrade_infra.operations.session import Session
from upgrade_infra.restore import meta
from upgrade_infra.stack.manifest import load_manifest

from .conftest import REPO, stop_all, write_stack

TINY = REPO / "tests" / "data" / "tiny" / "stack.yaml"
BAD = ["..", "../../../victim", "/etc", "a/b", "", "x\n", "web/../..", "."]


def cli(stack: Path, state: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "upgrade_infra", "--stack", str(stack), "--state-dir", str(state),
                           *args], capture_output=True, text=True, timeout=120)


def _victim(root: Path) -> Path:
    v = root / "victim"
    v.mkdir()
    (v / "precious.txt").write_text("do not delete")
    return v


@pytest.fixture
def tiny(private_tmp):
    s = Session(write_stack(private_tmp / "stack", TINY), private_tmp / "state")
    yield s
    stop_all(s)


def _tiny_with(private_tmp: Path, edit) -> Path:
    return write_stack(private_tmp / "stack", TINY, edit)


def test_version_with_dotdot_is_refused_before_anything_is_touched(private_tmp):
    """The issue's reproduction: version "../../../victim" resolves, from installs/web/, to a directory
    beside the state dir; `env up` must refuse the manifest (exit 2, file:line:field, fix), delete nothing."""
    victim = _victim(private_tmp)

    def edit(d):
        d["services"]["web"]["versions"]["../../../victim"] = {}
        d["environments"]["production"]["versions"]["web"] = "../../../victim"

    stack = _tiny_with(private_tmp, edit)
    (private_tmp / "state" / "installs" / "web").mkdir(parents=True)  # another web version was installed before
    try:
        for _ in range(2):  # the issue needed a second `env up`
            r = cli(stack, private_tmp / "state", "env", "up", "production", "--no-seed")
            assert (victim / "precious.txt").exists(), "a directory outside the state dir was deleted"
            assert r.returncode == 2, r.stderr
    finally:  # on a regression the env came up: stop it
        if (private_tmp / "state" / "envs" / "production").exists():
            cli(stack, private_tmp / "state", "env", "down", "production")
    assert f"{stack}:" in r.stderr and "services.web.versions" in r.stderr
    assert "'../../../victim' is not a valid version" in r.stderr and "fix:" in r.stderr
    assert not (private_tmp / "state" / "envs" / "production").exists()


def test_manifest_names_file_line_field_for_bad_versions(tmp_path):
    yaml = YAML()
    data = yaml.load(TINY.read_text())
    data["environments"]["production"]["versions"]["web"] = "/etc"
    p = tmp_path / "stack.yaml"
    with open(p, "w") as f:
        yaml.dump(data, f)
    with pytest.raises(ManifestError) as e:
        load_manifest(p)
    i = e.value.issues[0]
    line = next(n for n, text in enumerate(p.read_text().splitlines(), 1) if "/etc" in text)
    assert i.field == "environments.production.versions.web" and i.line == line
    assert "'/etc' is not a valid version" in i.problem and "e.g. 1.4.2" in i.fix


@pytest.mark.parametrize("bad", BAD)
def test_state_paths_refuse_bad_names(tmp_path, bad):
    st = StateDir(tmp_path / "state").ensure()
    from upgrade_infra.core import journal, lock
    from upgrade_infra.validation import baseline

    for make in (lambda: st.installs_dir("web", bad), lambda: st.installs_dir(bad, "1.0"), lambda: st.env_dir(bad),
                 lambda: st.secrets_dir(bad), lambda: meta.rp_dir(st, bad), lambda: meta.rp_dir(st, "rp-" + bad),
                 lambda: lock.lock_path(st, bad), lambda: journal.Journal(st, bad),
                 lambda: baseline.state_path(st, bad)):
        with pytest.raises(BadInput) as e:
            make()
        assert e.value.exit_code == 2 and e.value.fix
    assert st.installs_dir("web", "1.4.2+deb12~1") == st.root / "installs" / "web" / "1.4.2+deb12~1"


def test_guard_refuses_dotdot_absolute_and_symlinks_out(tmp_path):
    st = StateDir(tmp_path / "state").ensure()
    victim = _victim(tmp_path)
    for outside in (st.root / ".." / "victim", victim, Path("/tmp"), st.root / "envs" / ".." / ".." / "victim"):
        with pytest.raises(StateDirError, match="outside the state dir"):
            st.remove(outside)
    # a directory inside the state dir that is a symlink to the victim: writing through it is refused,
    # deleting it removes the link only
    (st.root / "installs").mkdir()
    (st.root / "installs" / "web").symlink_to(victim)
    with pytest.raises(StateDirError, match="outside the state dir"):
        st.installs_dir("web", "1.0")
    with pytest.raises(StateDirError):
        st.remove(st.root / "installs" / "web" / "precious.txt")
    st.remove(st.root / "installs" / "web")
    assert not (st.root / "installs" / "web").exists() and (victim / "precious.txt").exists()
    with pytest.raises(StateDirError, match="state dir itself"):
        st.remove(st.root)
    assert fsutil.inside(st.root, "envs/x") == st.root / "envs" / "x"


def test_planted_symlink_in_installs_cannot_redirect_a_reinstall(tiny, private_tmp):
    """installs/web -> a directory outside: a reinstall of web 1.0 must not empty <outside>/1.0."""
    outside = private_tmp / "outside"
    (outside / "1.0").mkdir(parents=True)
    (outside / "1.0" / "precious.txt").write_text("do not delete")
    installs = tiny.state.root / "installs"
    installs.mkdir(parents=True)
    (installs / "web").symlink_to(outside)
    env = tiny.env("production")
    with pytest.raises(StateDirError, match="outside the state dir"):
        env.ensure_installed("web", "1.0")
    assert (outside / "1.0" / "precious.txt").read_text() == "do not delete"


def test_planted_symlinked_restore_point_is_not_followed(tmp_path):
    st = StateDir(tmp_path / "state").ensure()
    victim = _victim(tmp_path)
    st.private_dir("restore-points")
    link = st.root / "restore-points" / "rp-1a2b3c4d"
    link.symlink_to(victim)
    with pytest.raises(StateDirError, match="outside the state dir"):
        meta.rp_dir(st, "rp-1a2b3c4d")  # reading, writing or deleting through it: refused
    meta.remove_dir(link)  # prune's own delete removes the link, not what it points to
    assert (victim / "precious.txt").exists() and not link.is_symlink()


@pytest.mark.parametrize("args", [
    ["rollback", "production", "--to", "../../../tmp"],
    ["rollback", "production", "--to", "/tmp"],
    ["snapshot", "restore", "production", "../../../tmp"],
    ["snapshot", "show", "../x"],
    ["env", "up", "../../victim"],
    ["env", "restore", "prod2", "--from", "../../../tmp"],
])
def test_cli_ids_are_checked_before_anything_runs(tiny, args):
    r = cli(tiny.stack, tiny.state.root, *args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Invalid value for" in r.stderr and "is not a valid" in r.stderr and "fix:" in r.stderr
    assert "rm -r" not in r.stderr
    assert not (tiny.state.root / "envs").exists() or not any((tiny.state.root / "envs").iterdir())
    assert os.path.isdir("/tmp")


def test_restore_point_metadata_cannot_point_outside():
    """An imported meta.json whose data dir copy is `../../..` is refused when read."""
    from pydantic import ValidationError

    base = {"id": "rp-1a2b3c4d", "env": "production", "strategy": "dump", "created_at": 0, "versions": {},
            "manifest_sha256": "", "pg_major": 15}
    for rel in ("../../../victim", "/etc", "data/../../x"):
        with pytest.raises(ValidationError):
            meta.RestorePoint.model_validate({**base, "data_dirs": {"web": rel}})
    assert meta.RestorePoint.model_validate({**base, "data_dirs": {"web": "data/web"}}).data_dirs == {"web": "data/web"}


def test_planted_symlink_in_an_env_dir_cannot_redirect_logs_or_data(tiny, private_tmp):
    outside = private_tmp / "outside"
    outside.mkdir()
    env = tiny.env("production")
    env.dir.mkdir(parents=True)
    (env.dir / "logs").symlink_to(outside)
    (env.dir / "data").symlink_to(outside)
    for make in (lambda: env.log_path("web"), lambda: env.data_dir("web")):
        with pytest.raises(StateDirError, match="outside the state dir"):
            make()
