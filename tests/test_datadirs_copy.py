"""The data-dir copier of restore points: exclusions, hard links to an unchanged previous copy,
owners/modes/times kept, and reflink clones on a filesystem that has them (XFS loop mount, as root)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from upgrade_infra.restore.datadirs import copy_tree


def _tree(root: Path) -> None:
    (root / "cache" / "x").mkdir(parents=True)
    (root / "cache" / "x" / "big").write_bytes(b"c" * 1000)
    (root / "keep").mkdir()
    (root / "keep" / "a").write_bytes(b"a" * 1000)
    (root / "b.tmp").write_text("t")
    (root / "link").symlink_to("keep/a")
    os.chmod(root / "keep" / "a", 0o640)


def test_copy_excludes_links_and_keeps_metadata(tmp_path):
    src = tmp_path / "src"
    _tree(src)
    first = copy_tree(src, tmp_path / "one", ["cache/**", "*.tmp"])
    assert first.excluded == 2 and first.files == 1 and first.linked == 0
    one = tmp_path / "one"
    assert sorted(p.relative_to(one).as_posix() for p in one.rglob("*")) == ["keep", "keep/a", "link"]
    assert os.readlink(one / "link") == "keep/a"
    s, d = os.stat(src / "keep" / "a"), os.stat(one / "keep" / "a")
    assert (d.st_mode, d.st_uid, d.st_mtime_ns) == (s.st_mode, s.st_uid, s.st_mtime_ns)
    second = copy_tree(src, tmp_path / "two", ["cache/**", "*.tmp"], link_from=one)
    assert second.linked == 1 and os.stat(tmp_path / "two" / "keep" / "a").st_ino == d.st_ino
    (src / "keep" / "a").write_bytes(b"changed")  # changed: copied, not linked
    third = copy_tree(src, tmp_path / "three", ["cache/**"], link_from=one)
    assert third.linked == 0 and (tmp_path / "three" / "keep" / "a").read_bytes() == b"changed"


@pytest.fixture
def xfs(tmp_path):
    if os.geteuid() != 0 or not shutil.which("mkfs.xfs"):
        pytest.skip("needs root and xfsprogs")
    img, mnt = tmp_path / "fs.img", tmp_path / "mnt"
    mnt.mkdir()
    with open(img, "wb") as f:
        f.truncate(400 << 20)
    subprocess.run(["mkfs.xfs", "-q", "-m", "reflink=1", str(img)], check=True)
    if subprocess.run(["mount", "-o", "loop", str(img), str(mnt)]).returncode != 0:
        pytest.skip("cannot loop-mount here")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_reflink_clone_on_xfs(xfs):
    (xfs / "src").mkdir()
    (xfs / "src" / "a.bin").write_bytes(os.urandom(8 << 20))
    st = copy_tree(xfs / "src", xfs / "dst")
    assert st.cloned == 1 and st.copied == 0 and st.bytes_written == 0
    assert (xfs / "dst" / "a.bin").read_bytes() == (xfs / "src" / "a.bin").read_bytes()
