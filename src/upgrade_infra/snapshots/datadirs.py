"""Service data dirs in a restore point: copied at capture, swapped in by rename on rollback.

``<rp>/data/<service>`` is the restore point's copy; ``<rp>/spare/data/<service>`` a second copy
that a rollback renames into place (O(1)) and that is made again afterwards. The live data dir a
rollback replaces is renamed into the quarantine (``<quarantine>/data/<service>``), never deleted.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from .. import fsutil
from .meta import SPARE, RestorePoint
from .names import short

if TYPE_CHECKING:
    from ..environments import Environment


def services_with_data(env: Environment) -> list[str]:
    return [n for n, s in env.manifest.services.items() if s.data_dir]


def capture(env: Environment, rp: RestorePoint, rp_dir: Path) -> None:
    for svc in services_with_data(env):
        src = env.data_dir(svc)
        rel = f"data/{svc}"
        if src.exists():
            fsutil.copy_tree(src, rp_dir / rel)
        else:
            (rp_dir / rel).mkdir(parents=True, mode=0o700)
        rp.data_dirs[svc] = rel


def bytes_of(env: Environment) -> int:
    return sum(fsutil.tree_bytes(env.data_dir(s)) for s in services_with_data(env) if env.data_dir(s).exists())


def spare_path(rp_dir: Path, rel: str) -> Path:
    return rp_dir / SPARE / rel


def make_spare(rp: RestorePoint, rp_dir: Path) -> None:
    for rel in rp.data_dirs.values():
        dst = spare_path(rp_dir, rel)
        if not dst.exists():
            tmp = dst.with_name(dst.name + ".partial")
            fsutil.remove_tree(rp_dir.parent.parent, tmp)  # <state>/restore-points/<id>: never outside <state>
            fsutil.copy_tree(rp_dir / rel, tmp)
            os.replace(tmp, dst)


def stage(env: Environment, rp: RestorePoint, rp_dir: Path, op: str) -> dict[str, str]:
    """The copy each service's data dir is swapped with: the spare (O(1)) or a fresh copy."""
    out = {}
    for svc, rel in rp.data_dirs.items():
        spare = spare_path(rp_dir, rel)
        if spare.exists():
            out[svc] = str(spare)
            continue
        staged = env.data_dir(svc).with_name(f".{svc}.__r_{short(op)}")
        if not staged.exists():
            tmp = staged.with_name(staged.name + ".partial")
            env.state.remove(tmp)
            fsutil.copy_tree(rp_dir / rel, tmp)
            os.replace(tmp, staged)
        out[svc] = str(staged)
    return out


def swap(env: Environment, staged: dict[str, str], qdir: Path) -> dict[str, str]:
    """Live data dirs into the quarantine, staged copies into place (renames; idempotent)."""
    out = {}
    for svc, src in staged.items():
        live, q = env.data_dir(svc), qdir / "data" / svc
        q.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if live.exists() and not q.exists():
            os.rename(live, q)
        if q.exists():
            out[svc] = str(q)
        if Path(src).exists() and not live.exists():
            live.parent.mkdir(parents=True, exist_ok=True)
            os.rename(src, live)
    return out


def verify(rp: RestorePoint, rp_dir: Path) -> list[str]:
    return [f"missing data dir copy {rel}" for rel in rp.data_dirs.values() if not (rp_dir / rel).is_dir()]

