"""Service data dirs in a restore point: copied at capture, swapped in by rename on rollback.

``<rp>/data/<service>`` is the restore point's copy; ``<rp>/spare/data/<service>`` a second copy
that a rollback renames into place (O(1)) and that is made again afterwards. The live data dir a
rollback replaces is renamed into the quarantine (``<quarantine>/data/<service>``), never deleted.

Lean copies:

- ``services.<name>.data_dir_exclude`` (globs relative to the data dir: ``cache/**``, ``*.tmp``,
  ``tmp``) are left out of the copy; a rollback brings the data dir back without them.
- A file unchanged since the previous restore point of the environment (same size and mtime, the
  rsync quick check) is a hard link to that restore point's copy: both copies are read-only, so they
  can share the blocks; deleting either restore point leaves the other intact.
- Every other file is cloned (reflink, ``FICLONE``) where the filesystem can (XFS, btrfs): the
  restore point and its spare then share their blocks until one is written. Elsewhere (ext4) the
  spare is a real copy, because it becomes the live data dir the service writes into.
"""

from __future__ import annotations

import fcntl
import fnmatch
import os
import shutil
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upgrade_infra.core import fsutil
from upgrade_infra.restore.meta import SPARE, RestorePoint
from upgrade_infra.restore.names import short

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment
    from upgrade_infra.core.state import StateDir

FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)


def services_with_data(env: Environment) -> list[str]:
    """Services whose data is a directory on the tool's host (data kept only in engine volumes is
    captured by :mod:`upgrade_infra.restore.volumes`)."""
    from upgrade_infra.backends.interface import ServiceData

    names = [n for n, s in env.manifest.services.items() if s.data_dir]
    if names and env.has(ServiceData):
        data = env.capability(ServiceData)
        names = [n for n in names if data.on_host(n)]
    return names


def live(env: Environment, service: str) -> Path:
    """Where ``service``'s live data is on the tool's host (the backend's :class:`ServiceData`:
    a folder for ``local``); ``MissingCapability`` (exit 2) on a backend without it."""
    from upgrade_infra.backends.interface import ServiceData

    return env.capability(ServiceData).path(service)


def excluded(rel: str, patterns: list[str]) -> bool:
    """Whether ``rel`` (posix path relative to the data dir) matches an exclusion (pure).
    ``dir/**`` and ``dir`` exclude the directory with everything under it."""
    for p in patterns:
        p = p.strip("/")
        base = p[:-3] if p.endswith("/**") else p
        if fnmatch.fnmatchcase(rel, p) or fnmatch.fnmatchcase(rel, base):
            return True
    return False


class CopyStats:
    def __init__(self) -> None:
        self.files = self.linked = self.cloned = self.copied = self.excluded = 0
        self.bytes_written = 0

    def to_dict(self) -> dict[str, int]:
        return dict(vars(self))


def _clone_or_copy(src: str, dst: str, stats: CopyStats) -> None:
    with open(src, "rb") as fs, open(dst, "wb") as fd:
        try:
            fcntl.ioctl(fd.fileno(), FICLONE, fs.fileno())
            stats.cloned += 1
            return
        except OSError:
            pass
        shutil.copyfileobj(fs, fd, 1 << 20)
    stats.copied += 1
    stats.bytes_written += os.path.getsize(src)


def copy_tree(src: Path, dst: Path, exclude: list[str] | None = None, link_from: Path | None = None) -> CopyStats:
    """Copy ``src`` to ``dst`` (owners, modes and times kept) leaving out ``exclude``; files equal to
    their counterpart under ``link_from`` (size and mtime) are hard-linked to it, others cloned or copied."""
    if dst.exists():
        raise FileExistsError(dst)
    stats, exclude = CopyStats(), exclude or []
    dirs: list[tuple[Path, os.stat_result]] = []
    for root, dnames, fnames in os.walk(src):
        rroot = Path(root).relative_to(src)
        keep = []
        for d in dnames:
            rel = (rroot / d).as_posix()
            if excluded(rel, exclude):
                stats.excluded += 1
            else:
                keep.append(d)
        dnames[:] = keep
        target = dst / rroot
        target.mkdir(parents=True, exist_ok=True)
        dirs.append((target, os.lstat(root)))
        for f in fnames:
            rel = (rroot / f).as_posix()
            if excluded(rel, exclude):
                stats.excluded += 1
                continue
            s, d = os.path.join(root, f), str(target / f)
            st = os.lstat(s)
            if stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(s), d)
                os.lchown(d, st.st_uid, st.st_gid)
                continue
            if not stat.S_ISREG(st.st_mode):
                continue  # sockets, fifos: not data
            stats.files += 1
            prev = link_from / rel if link_from else None
            if prev is not None:
                try:
                    pst = os.lstat(prev)
                    if (stat.S_ISREG(pst.st_mode) and pst.st_size == st.st_size
                            and pst.st_mtime_ns == st.st_mtime_ns):
                        os.link(prev, d)
                        stats.linked += 1
                        continue
                except OSError:
                    pass
            _clone_or_copy(s, d, stats)
            os.chown(d, st.st_uid, st.st_gid)
            os.chmod(d, stat.S_IMODE(st.st_mode))
            os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns))
    for target, st in reversed(dirs):  # after their contents, so the times stay
        os.chown(target, st.st_uid, st.st_gid)
        os.chmod(target, stat.S_IMODE(st.st_mode))
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    return stats


def _previous_copy(env: Environment, rp: RestorePoint, svc: str) -> Path | None:
    """The same service's copy in the newest earlier restore point of this environment."""
    from upgrade_infra.restore.meta import rp_dir
    from upgrade_infra.restore.points import list_points

    for other in reversed(list_points(env.state, env.name)):
        if other.id != rp.id and svc in other.data_dirs:
            p = rp_dir(env.state, other.id) / other.data_dirs[svc]
            if p.is_dir():
                return p
    return None


def capture(env: Environment, rp: RestorePoint, rp_dir: Path) -> dict[str, Any]:
    out = {}
    for svc in services_with_data(env):
        src = live(env, svc)
        rel = f"data/{svc}"
        if src.exists():
            stats = copy_tree(src, rp_dir / rel, env.manifest.services[svc].data_dir_exclude,
                              _previous_copy(env, rp, svc))
            out[svc] = stats.to_dict()
        else:
            (rp_dir / rel).mkdir(parents=True, mode=0o700)
        rp.data_dirs[svc] = rel
    return out


def bytes_of(env: Environment) -> int:
    """Bytes of the live data dirs a restore point copies (exclusions left out)."""
    total = 0
    for s in services_with_data(env):
        d, exclude = live(env, s), env.manifest.services[s].data_dir_exclude
        for root, dnames, fnames in os.walk(d):
            rroot = Path(root).relative_to(d)
            dnames[:] = [x for x in dnames if not excluded((rroot / x).as_posix(), exclude)]
            for f in fnames:
                if not excluded((rroot / f).as_posix(), exclude):
                    try:
                        total += os.lstat(os.path.join(root, f)).st_size
                    except OSError:
                        continue
    return total


def spare_path(rp_dir: Path, rel: str) -> Path:
    return rp_dir / SPARE / rel


def make_spare(rp: RestorePoint, rp_dir: Path) -> None:
    for rel in rp.data_dirs.values():
        dst = spare_path(rp_dir, rel)
        if not dst.exists():
            tmp = dst.with_name(dst.name + ".partial")
            fsutil.remove_tree(rp_dir.parent.parent, tmp)  # <state>/restore-points/<id>: never outside <state>
            copy_tree(rp_dir / rel, tmp)  # cloned where the filesystem can: no second copy of the blocks
            os.replace(tmp, dst)


def stage(env: Environment, rp: RestorePoint, rp_dir: Path, op: str) -> dict[str, str]:
    """The copy each service's data dir is swapped with: the spare (O(1)) or a fresh copy."""
    out = {}
    for svc, rel in rp.data_dirs.items():
        spare = spare_path(rp_dir, rel)
        if spare.exists():
            out[svc] = str(spare)
            continue
        staged = live(env, svc).with_name(f".{svc}.__r_{short(op)}")
        if not staged.exists():
            tmp = staged.with_name(staged.name + ".partial")
            env.state.remove(tmp)
            copy_tree(rp_dir / rel, tmp)  # never hard links: the service writes into it
            os.replace(tmp, staged)
        out[svc] = str(staged)
    return out


def swap(env: Environment, staged: dict[str, str], qdir: Path) -> dict[str, str]:
    """Live data dirs into the quarantine, staged copies into place (renames; idempotent)."""
    out = {}
    for svc, src in staged.items():
        cur, q = live(env, svc), qdir / "data" / svc
        q.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if cur.exists() and not q.exists():
            os.rename(cur, q)
        if q.exists():
            out[svc] = str(q)
        if Path(src).exists() and not cur.exists():
            cur.parent.mkdir(parents=True, exist_ok=True)
            os.rename(src, cur)
    return out


def verify(rp: RestorePoint, rp_dir: Path) -> list[str]:
    return [f"missing data dir copy {rel}" for rel in rp.data_dirs.values() if not (rp_dir / rel).is_dir()]


# -- disk use ------------------------------------------------------------------------------------------
def disk_use(state: StateDir, env: str) -> dict[str, Any]:
    """What an environment's restore points take on disk: files under their directories (each
    hard-linked file counted once; ``apparent`` counts every name), their spares, and how many."""
    from upgrade_infra.restore.meta import all_ids, load, rp_dir

    seen: set[tuple[int, int]] = set()
    total = apparent = spare = count = 0
    for i in all_ids(state):
        try:
            rp = load(state, i)
        except Exception:  # noqa: BLE001 - an unreadable restore point is reported by `snapshot verify`
            continue
        if rp.env != env:
            continue
        count += 1
        d = rp_dir(state, i)
        for root, _, files in os.walk(d):
            in_spare = Path(root).is_relative_to(d / SPARE)
            for f in files:
                try:
                    st = os.lstat(os.path.join(root, f))
                except OSError:
                    continue
                apparent += st.st_size
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
                used = st.st_blocks * 512
                total += used
                spare += used if in_spare else 0
    return {"count": count, "disk_bytes": total, "apparent_bytes": apparent, "spare_bytes": spare}


def place(env: Environment, rp: RestorePoint, src: Path) -> None:
    """Put the data dirs of the restore point in ``src`` in place of the environment's (``env restore``)."""
    for svc, rel in rp.data_dirs.items():
        cur = live(env, svc)
        if cur.exists():
            env.state.remove(cur)
        fsutil.copy_tree(src / rel, cur)
