"""``cow``: staging from a reflink copy of the source's last ``cow`` restore point (or a fresh one).

Nothing is read from the source's live cluster: the restore point's data dir and service data dirs
are reflinked (``cp -a --reflink=always``: metadata only, O(files)) into the target, then the copy
is made staging's own exactly like ``physical`` (port/socket settings unbound, staging's conf and
role passwords, restore-point databases dropped). Masking then touches only the masked columns, so
the time to ready does not grow with the data size. The last ``cow`` restore point is reused when it
was taken at the source's current versions; otherwise a fresh one is taken (the source's databases
are closed for well under a second; its services keep running).
"""

from __future__ import annotations

import shutil
import time
from typing import TYPE_CHECKING

from upgrade_infra.backends.interface import PhysicalDataDir, ServiceData
from upgrade_infra.core import fsutil
from upgrade_infra.core.errors import RestorePointError
from upgrade_infra.restore import cow as cow_rp
from upgrade_infra.restore import points as snapshots
from upgrade_infra.restore.fs import REL
from upgrade_infra.restore.meta import rp_dir
from upgrade_infra.staging.sync import register
from upgrade_infra.staging.sync.base import Copy, Progress, SyncStrategy, service_dirs
from upgrade_infra.staging.sync.physical import _drop_undeclared, _put_back, unbind_auto_conf

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment
    from upgrade_infra.restore.meta import RestorePoint


def last_cow_point(source: Environment) -> RestorePoint | None:
    """The newest ``cow`` restore point of ``source`` taken at its current versions."""
    points = [r for r in snapshots.list_points(source.state, source.name)
              if r.strategy == "cow" and r.versions == source.record.versions]
    return points[-1] if points else None


@register("cow")
class CowSync(SyncStrategy):
    requires = frozenset({PhysicalDataDir, ServiceData})
    alternative = "dump"
    reads_live_source = False  # the copy is a snapshot: masking rules are checked against the copy
    changes_source = True  # takes a cow restore point of the source when it has none

    def unavailable(self, source: Environment, *, stop_source: bool = False) -> tuple[str, str] | None:
        if not source.capability(PhysicalDataDir).initialized():
            return (f"environment {source.name!r} has no PostgreSQL data dir to copy",
                    f"bring it up first: `upgrade-infra env up {source.name}`")
        why = cow_rp.problem(source)
        if why:
            return (f"--sync cow needs reflinks: {why}",
                    "use --sync dump (online; the default from production), or put the state dir on XFS "
                    "(reflink=1) or btrfs")
        return None

    def bytes_needed(self, source: Environment) -> int:
        return 64 << 20  # reflinks share the blocks: metadata only

    def copy(self, source: Environment, target: Environment, progress: Progress, *,
             stop_source: bool = False) -> Copy:
        t0 = time.monotonic()
        rp = last_cow_point(source)
        fresh = rp is None
        if rp is None:
            res = snapshots.create(source, "cow", label=f"for staging {target.name}",
                                   command=f"stage create {target.name} (cow snapshot of {source.name})")
            rp = snapshots.get(source.state, res["restore_point"]["id"])
        base = rp_dir(source.state, rp.id)
        problems = snapshots.verify(source, rp)
        if problems:
            raise RestorePointError(f"restore point {rp.id} of {source.name} is damaged: {'; '.join(problems[:3])}",
                                    fix=f"take a fresh one: `upgrade-infra snapshot create {source.name} "
                                        "--strategy cow`")
        snap_s = time.monotonic() - t0
        copy = Copy(self.name, {db: db for db in source.manifest.postgres.databases})
        dst_pg = target.capability(PhysicalDataDir)
        dst = dst_pg.path
        prev = dst.with_name("data.prev")
        if dst_pg.initialized():
            dst_pg.stop()
            shutil.rmtree(prev, ignore_errors=True)
            dst.rename(prev)
            copy.on_abort.append(lambda: _put_back(target, prev))
            copy.on_commit.append(lambda: shutil.rmtree(prev, ignore_errors=True))
        else:
            copy.on_abort.append(lambda: (dst_pg.stop(), shutil.rmtree(dst, ignore_errors=True)))
        dst_pg.prepare()
        t_cp = time.monotonic()
        dst.parent.mkdir(parents=True, exist_ok=True)
        fsutil.reflink_tree(base / REL, dst)
        cp_s = time.monotonic() - t_cp
        progress("reflink data dir", rp.bytes, rp.bytes)
        auto = dst / "postgresql.auto.conf"
        if auto.exists():
            auto.write_text(unbind_auto_conf(auto.read_text()))
        target.provision_database()  # staging's conf (port, socket), staging's role passwords
        dropped = _drop_undeclared(target)
        copy.stats.update(bytes=rp.bytes, seconds=round(cp_s, 3), total_s=round(time.monotonic() - t0, 3),
                          restore_point=rp.id, fresh_restore_point=fresh, snapshot_s=round(snap_s, 3),
                          snapshot_age_s=round(time.time() - rp.created_at, 1), source_outage_s=0.0,
                          dropped_databases=dropped)
        copy.stats["data_dirs"] = self._data_dirs(source, target, rp, base, copy)
        return copy

    @staticmethod
    def _data_dirs(source: Environment, target: Environment, rp: RestorePoint, base, copy: Copy) -> dict:
        """The restore point's service data dirs, reflinked beside the target's current ones."""
        t0, done = time.monotonic(), 0
        dst_dirs = service_dirs(target)
        for svc in service_dirs(source):
            dst = dst_dirs[svc]
            prev = dst.with_name(f".{svc}.prev")
            shutil.rmtree(prev, ignore_errors=True)
            if dst.exists():
                dst.rename(prev)
                copy.on_abort.append(lambda d=dst, p=prev: (shutil.rmtree(d, ignore_errors=True), p.rename(d)))
                copy.on_commit.append(lambda p=prev: shutil.rmtree(p, ignore_errors=True))
            else:
                copy.on_abort.append(lambda d=dst: shutil.rmtree(d, ignore_errors=True))
            src = base / rp.data_dirs[svc] if svc in rp.data_dirs else None
            if src is not None and src.is_dir():
                dst.parent.mkdir(parents=True, exist_ok=True)
                fsutil.reflink_tree(src, dst)
                done += fsutil.tree_bytes(dst)
            else:
                dst.mkdir(parents=True, mode=0o700)
        return {"bytes": done, "seconds": round(time.monotonic() - t0, 3), "from": rp.id}
