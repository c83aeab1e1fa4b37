"""File-tree copies for restore points and staging: reflink where the filesystem can, checksums, disk space;
and the one check every delete and write under the state dir goes through (:func:`inside`)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from upgrade_infra.core import runner
from upgrade_infra.core.errors import DiskFull, StateDirError


def inside(root: Path, path: Path, what: str = "write to") -> Path:
    """``path`` with symlinks resolved, if it lies inside ``root`` (also resolved); else StateDirError (exit 2).

    The one guard for every path the tool deletes or writes under its state dir: names are validated
    where they come in (manifest, CLI), and this catches whatever still escapes (``..``, an absolute
    path, a symlink planted inside the state dir that points out of it).
    """
    base = Path(root).resolve()
    real = Path(os.path.join(base, path)).resolve()  # a relative path is taken relative to root
    if real != base and not real.is_relative_to(base):
        raise StateDirError(f"refusing to {what} {path}: it resolves to {real}, outside the state dir {base}",
                            fix="use names without '/' or '..'; remove any symlink planted inside the state dir",
                            path=str(path), resolved=str(real), state_dir=str(base))
    return real


def remove_tree(root: Path, path: Path, *, ignore_errors: bool = False) -> None:
    """``rm -r path`` (a directory, a file, or a symlink itself), after :func:`inside` checked it lies in ``root``.

    A symlink is removed as a link, never followed; a missing path is not an error.
    """
    p = Path(path)
    if p.is_symlink():
        inside(root, p.parent, "delete in")
        p.unlink()
        return
    real = inside(root, p, "delete")
    if real == Path(root).resolve():
        raise StateDirError(f"refusing to delete the state dir itself ({real})", fix="name a path inside it")
    if real.is_dir():
        shutil.rmtree(real, ignore_errors=ignore_errors)
    else:
        real.unlink(missing_ok=True)


def cp_argv(src: Path, dst: Path, reflink: str = "auto") -> list[str]:
    """``cp -a`` keeps owners and modes (PostgreSQL data dirs must stay owned by the server user)."""
    return ["cp", "-a", f"--reflink={reflink}", str(src), str(dst)]


def copy_tree(src: Path, dst: Path, reflink: str = "auto") -> None:
    if dst.exists():
        raise FileExistsError(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    runner.run(cp_argv(src, dst, reflink), timeout=3600)


def tree_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                continue
    return total


def free_bytes(path: Path) -> int:
    p = path
    while not p.exists():
        p = p.parent
    return shutil.disk_usage(p).free


def require_space(path: Path, needed: int, what: str, margin: float = 1.1) -> None:
    free = free_bytes(path)
    if free < needed * margin:
        raise DiskFull(f"not enough disk for {what}: need {needed * margin / 1e6:.0f} MB, "
                       f"{free / 1e6:.0f} MB free at {path}", fix="free disk space or prune restore points",
                       needed=int(needed * margin), free=free)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def reflink_tree(src: Path, dst: Path) -> None:
    """A copy-on-write copy (``cp -a --reflink=always``): fails instead of falling back to a full copy."""
    copy_tree(src, dst, reflink="always")


def sync_fs(path: Path) -> None:
    """Write back the dirty pages of ``path``'s filesystem (``sync -f``): a reflink must flush its
    source first, so doing it before a write pause keeps the pause short."""
    runner.run(["sync", "-f", str(path)], timeout=600)


def reflink_problem(directory: Path) -> str | None:
    """Why ``directory``'s filesystem cannot make reflink copies, or None when it can.

    Detected, not guessed: a small probe file is written there and copied with ``--reflink=always``.
    """
    import tempfile

    directory.mkdir(parents=True, exist_ok=True)
    probe = Path(tempfile.mkdtemp(prefix=".reflink-probe-", dir=directory))
    try:
        (probe / "a").write_bytes(b"\0" * 65536)
        r = runner.run(cp_argv(probe / "a", probe / "b", "always"), check=False, timeout=30)
        if r.returncode != 0:
            why = (r.stderr.strip().splitlines() or ["cp failed"])[-1]
            return f"{fs_type(directory)} filesystem at {directory} cannot make reflink copies ({why})"
        return None
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def fs_type(path: Path) -> str:
    """The filesystem type holding ``path`` (from /proc/self/mounts; "unknown" elsewhere)."""
    p = path.resolve()
    best, kind = "", "unknown"
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return kind
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        mnt = parts[1].replace("\\040", " ")
        if (str(p) == mnt or str(p).startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best):
            best, kind = mnt, parts[2]
    return kind
