"""The journaled steps shared by ``stage create`` and ``stage sync`` (see :mod:`upgrade_infra.staging.lifecycle`).

Each step has an inverse where it changes something; live objects (the strategy's two-phase copy,
the masking plan) are shared through :class:`SyncRun`, results go to the journal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from upgrade_infra.core import fsutil
from upgrade_infra.core.errors import BadInput
from upgrade_infra.core.steps import Ctx, Step, end_op, run_or_undo
from upgrade_infra.restore import points as snapshots
from upgrade_infra.staging import isolation, masking, sync
from upgrade_infra.staging.sync.base import Copy, Progress, copy_data_dirs

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment
    from upgrade_infra.operations.session import Session

RP_LABEL = "staging: synced"


def others(s: Session, name: str) -> list[Environment]:
    return [e for e in s.environments() if e.name != name]


# -- the journaled steps ---------------------------------------------------------------------------
class SyncRun:
    """What the steps of one create/sync share (live objects, not journaled)."""

    def __init__(self, s: Session, env: Environment, source: Environment, strategy: sync.SyncStrategy,
                 mask: bool, progress: Progress, stop_source: bool) -> None:
        self.s, self.env, self.source, self.strategy = s, env, source, strategy
        self.mask, self.progress, self.stop_source = mask, progress, stop_source
        self.copy: Copy | None = None
        self.plan: masking.MaskPlan | None = None

    def copy_databases(self, ctx: Ctx) -> dict:
        self.copy = self.strategy.copy(self.source, self.env, self.progress, stop_source=self.stop_source)
        return {"strategy": self.strategy.name, **self.copy.stats}

    def abort_copy(self, ctx: Ctx) -> dict:
        if self.copy:
            self.copy.abort()
        return {"aborted": True}

    def copy_dirs(self, ctx: Ctx) -> dict:
        assert self.copy is not None
        if "data_dirs" not in self.copy.stats:  # cow: already reflinked from the same snapshot
            copy_data_dirs(self.source, self.env, self.copy, self.progress)
        return self.copy.stats["data_dirs"]

    def _copy_db(self, db: str) -> str:
        assert self.copy is not None
        return self.env.conninfo(self.copy.databases[db])

    def mask_data(self, ctx: Ctx) -> dict:
        m = self.s.manifest
        self.plan = masking.plan(m, self._copy_db, read_only=False,
                                 context=f"{self.source.name} runs {fmt_versions(self.source.record.versions)}")
        return masking.apply(self.plan, self._copy_db, masking.masking_key(self.s.state))

    def leak_check(self, ctx: Ctx) -> dict:
        assert self.plan is not None
        report = masking.leak_check(self.plan, self.source.conninfo, self._copy_db, secrets=self.source_secrets(),
                                    databases=list(self.s.manifest.postgres.databases))
        masking.require_no_leak(report)
        return report

    def source_secrets(self) -> dict[str, str]:
        """The source's secrets and database passwords that staging does not share: none may be in the copy."""
        mine = set(self.env.secrets().values())
        out = {k: v for k, v in self.source.secrets().items() if v not in mine}
        out.update({f"password of database {db}": d["password"] for db, d in self.source.db_info().items()})
        return out

    def commit(self, ctx: Ctx) -> dict:
        assert self.copy is not None
        self.copy.commit()
        return {"committed": list(self.copy.databases)}

    def restore_point(self, ctx: Ctx) -> dict:
        for old in snapshots.list_points(self.s.state, self.env.name):
            snapshots.delete(self.env, old.id)  # superseded by this sync (or gone with a physical copy)
        # cow where the filesystem has reflinks (O(1) at any size), else clone
        rp = snapshots.capture(self.env, snapshots.strategy_name(self.env, "auto"), label=RP_LABEL, op=ctx.op)
        return {"restore_point": rp.id, "bytes": rp.bytes, "seconds": rp.capture_s}

    def spare(self, ctx: Ctx) -> dict:
        """A spare clone of the restore point, so `stage reset` is a rename swap (O(1)) whatever the size.
        Cloned from the restore point's own databases, so it runs while staging is already up."""
        rp = snapshots.get(self.s.state, ctx.results["restore_point"]["restore_point"])
        return {"spare_made": snapshots.make_spare(self.env, rp)}

    def start(self, ctx: Ctx) -> dict:
        isolation.check_services(self.env, others(self.s, self.env.name))
        return {"ready_s": {k: round(v, 3) for k, v in self.env.start_services().items()}}

    def stop(self, ctx: Ctx) -> dict:
        return {"stopped": self.env.stop_services()}

    def verify(self, ctx: Ctx) -> dict:
        st = self.env.status()
        if not st.healthy:
            bad = [f"{x.name}: {x.detail}" for x in st.services if not x.healthy]
            raise BadInput(f"staging {self.env.name} is not healthy after start: {'; '.join(bad) or 'postgres down'}",
                           fix=f"see the logs under {self.env.dir / 'logs'}")
        return {"healthy": True}


def fmt_versions(v: dict[str, str]) -> str:
    return ", ".join(f"{k} {x}" for k, x in sorted(v.items()))


def data_steps(r: SyncRun) -> list[Step]:
    steps = [Step("copy_databases", r.copy_databases, r.abort_copy), Step("copy_data_dirs", r.copy_dirs)]
    if r.mask:
        steps += [Step("mask", r.mask_data), Step("leak_check", r.leak_check)]
    return steps + [Step("commit", r.commit), Step("restore_point", r.restore_point),
                    Step("start_services", r.start, r.stop), Step("verify_health", r.verify),
                    Step("restore_point_spare", r.spare, budgeted=False)]


def run_op(r: SyncRun, kind: str, command: str, steps: list[Step], data: dict) -> Ctx:
    ctx = run_or_undo(r.env, kind, steps, command=command, data=data)  # a failure undoes what began
    end_op(ctx, "succeeded")
    return ctx


def prechecks(s: Session, r: SyncRun) -> int:
    """Masking rules against the source's live schema (read-only) and the disk needed, before any change."""
    if r.mask and r.strategy.reads_live_source:
        masking.plan(s.manifest, r.source.conninfo, read_only=True,
                     context=f"{r.source.name} runs {fmt_versions(r.source.record.versions)}")
    needed = r.strategy.bytes_needed(r.source)
    fsutil.require_space(s.state.root, needed, f"staging environment {r.env.name} ({r.strategy.name} copy "
                         f"of {r.source.name}, {needed / 1e6:.0f} MB)")
    return needed
