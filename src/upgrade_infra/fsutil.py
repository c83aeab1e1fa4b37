"""File-tree copies for restore points and staging: reflink where the filesystem can, checksums, disk space."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from . import runner
from .errors import DiskFull


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
