"""``physical``: a file copy of the source's *stopped* PostgreSQL cluster.

``cp -a --reflink=auto`` of the data dir (near-instant on XFS/btrfs, a plain copy elsewhere), then
the copy is made staging's own: settings that would bind it to the source's port or socket are
removed from ``postgresql.auto.conf``, the conf include is rewritten for staging's port and socket,
role passwords are replaced by staging's, and the source's restore-point databases are dropped.
A running source is stopped only when it is a staging env or when the caller asks (``stop_source``),
and is started again right after the copy.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

from upgrade_infra.backends.interface import PhysicalDataDir, ServiceData
from upgrade_infra.core import fsutil, sql
from upgrade_infra.restore.names import is_ours
from upgrade_infra.staging.sync import register
from upgrade_infra.staging.sync.base import Copy, Progress, SyncStrategy, data_dirs_bytes, run_watched
from upgrade_infra.staging.sync.dump import SYNC_SUFFIX

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment

BOUND_SETTINGS = re.compile(r"^\s*(port|unix_socket_directories|listen_addresses)\s*=", re.I)


def unbind_auto_conf(text: str) -> str:
    """postgresql.auto.conf without ALTER SYSTEM settings that would make the copy listen like its source."""
    return "".join(line for line in text.splitlines(keepends=True) if not BOUND_SETTINGS.match(line))


@register("physical")
class PhysicalSync(SyncStrategy):
    requires = frozenset({PhysicalDataDir, ServiceData})
    alternative = "dump"
    reads_live_source = False

    def unavailable(self, source: Environment, *, stop_source: bool = False) -> tuple[str, str] | None:
        pg = source.capability(PhysicalDataDir)
        if not pg.initialized():
            return (f"environment {source.name!r} has no PostgreSQL data dir to copy",
                    f"bring it up first: `upgrade-infra env up {source.name}`")
        if pg.running() and source.kind != "staging" and not stop_source:
            return (f"the physical strategy copies a stopped cluster, and {source.kind} {source.name!r} is running",
                    "use --strategy dump (online), or add --stop-source to accept a short outage of the source")
        return None

    def bytes_needed(self, source: Environment) -> int:
        return fsutil.tree_bytes(source.capability(PhysicalDataDir).path) + data_dirs_bytes(source)

    def copy(self, source: Environment, target: Environment, progress: Progress, *,
             stop_source: bool = False) -> Copy:
        copy = Copy(self.name, {db: db for db in source.manifest.postgres.databases})
        src_pg, dst_pg = source.capability(PhysicalDataDir), target.capability(PhysicalDataDir)
        dst = dst_pg.path
        prev = dst.with_name("data.prev")
        if dst_pg.initialized():
            dst_pg.stop()
            target.state.remove(prev, ignore_errors=True)
            dst.rename(prev)
            copy.on_abort.append(lambda: _put_back(target, prev))
            copy.on_commit.append(lambda: target.state.remove(prev, ignore_errors=True))
        else:
            copy.on_abort.append(lambda: (dst_pg.stop(), target.state.remove(dst, ignore_errors=True)))
        dst_pg.prepare()
        total = fsutil.tree_bytes(src_pg.path)
        was_running = src_pg.running()
        services = [s.name for s in source.status(probe=False).services if s.running] if was_running else []
        t0 = time.monotonic()
        if was_running:
            source.stop_services(services)
            src_pg.stop()
        try:
            t_cp = time.monotonic()
            run_watched(fsutil.cp_argv(src_pg.path, dst, reflink="auto"),
                        lambda: fsutil.tree_bytes(dst), "copy data dir", total, progress, timeout=7200)
            cp_s = time.monotonic() - t_cp
        finally:
            outage = time.monotonic() - t0
            if was_running:
                src_pg.start()
                if services:
                    source.start_services(services)
        dst_pg.clean_copy(dst)
        auto = dst / "postgresql.auto.conf"
        if auto.exists():
            auto.write_text(unbind_auto_conf(auto.read_text()))
        target.provision_database()  # staging's conf (port, socket), staging's role passwords
        dropped = _drop_undeclared(target)
        copy.stats.update(bytes=total, seconds=round(cp_s, 3), total_s=round(time.monotonic() - t0, 3),
                          source_outage_s=round(outage, 3) if was_running else 0.0, dropped_databases=dropped)
        return copy


def _drop_undeclared(target: Environment) -> list[str]:
    """Databases of the source's restore points, rollbacks and syncs: they are not staging's."""
    admin = target.conninfo()
    extra = [d for d in sql.database_sizes(admin) if is_ours(d) or d.endswith(SYNC_SUFFIX)]
    for d in extra:
        sql.execute(admin, sql.drop_database(d))
    return extra


def _put_back(target: Environment, prev) -> None:
    pg = target.capability(PhysicalDataDir)
    pg.stop()
    target.state.remove(pg.path, ignore_errors=True)
    prev.rename(pg.path)
