"""Reversibility and compatibility steps of ``migrate test``, and the reset of staging.

* ``downgrade``: the services' declared downgrade commands, the data compared with the before state
  (every table hashed, read from the restore point's clone), then the release migrated again;
* ``compatibility``: the old version started on the migrated schema, its smoke checks run;
* ``restore``: the restore-point rollback (the rollback's own steps, without its quarantine report and
  new spare), fingerprinted before any service starts: it must give the exact before fingerprints.
  Which rows lost values (:mod:`.rowdiff`) is resolved at that moment, against the before data;
* ``reset``: restore + cleanup, or ``stage reset`` when that fails.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from upgrade_infra.core.errors import BadInput, ServiceNotReady
from upgrade_infra.core.steps import Ctx, Step, StepFailed, begin_op, end_op, run_steps
from upgrade_infra.migration import execute, rowdiff
from upgrade_infra.restore import points as snapshots
from upgrade_infra.restore import quarantine
from upgrade_infra.restore.fingerprint import DataFingerprint, fingerprint, fingerprint_conninfos

if TYPE_CHECKING:
    from upgrade_infra.operations.session import Session

SKIP_ROLLBACK_STEPS = ("report", "replenish")  # no quarantine report, no new spare: the point is dropped


class ReversibilitySteps:
    """Mixed into :class:`~.rehearsal.Rehearsal` (which provides env, to, rep, before, integrity, captured)."""

    _full_before: DataFingerprint | None = None

    def full_before(self, ctx: Ctx) -> DataFingerprint:
        """The before state with every table hashed, read from the restore point's clone (same bytes)."""
        if self._full_before is None:
            rp = snapshots.get(self.env.state, ctx.data["rp"])
            with snapshots.get_strategy(rp.strategy).reference(self.env, rp) as cis:
                self._full_before = fingerprint_conninfos(cis, f"{self.env.name}@{rp.id}")
            self.rep["overhead"]["fingerprint_restore_point_s"] = self._full_before.seconds
        return self._full_before

    def downgrade(self, ctx: Ctx) -> dict[str, Any]:
        assert self.before is not None
        env, frm = self.env, self.rep["from_versions"]
        svcs = [s for s in reversed(env.manifest.start_order()) if s in self.to and env.manifest.service(s).downgrade]
        if not svcs:
            self.rep.setdefault("reversibility", {})["downgrade"] = {"declared": False, "verdict": "not declared"}
            return {"declared": False}
        d: dict[str, Any] = {"declared": True, "services": svcs, "exact": False}
        t0 = time.monotonic()
        for svc in svcs:
            r = env.run_job(svc, "downgrade", version=self.to[svc], timeout=env.manifest.migration.timeout_s,
                            to_version=frm[svc], from_version=self.to[svc])
            if r.returncode != 0:
                d.update(error=f"{svc} downgrade exited {r.returncode}: {(r.stderr or r.stdout).strip()[-300:]}",
                         verdict=f"downgrade of {svc} FAILED")
                break
        else:
            diffs = [str(x) for x in self.full_before(ctx).diff(fingerprint(env))]
            d.update(exact=not diffs, differences=diffs, seconds=round(time.monotonic() - t0, 3),
                     verdict="returns the exact before data" if not diffs else
                     f"does NOT return the before data ({len(diffs)} difference(s): {'; '.join(diffs[:3])})")
        again = execute.run_migration(env, self.to, env.manifest.migration.timeout_s, self.mode)
        d["upgrade_again"] = {"status": again["status"], "duration_s": again["duration_s"]}
        self.rep.setdefault("reversibility", {})["downgrade"] = d
        if again["status"] != "ok":
            raise BadInput(f"upgrading again after the downgrade {again['status']}: {again.get('detail')}")
        return {"exact": d["exact"], "verdict": d["verdict"]}

    def compatibility(self, ctx: Ctx) -> dict[str, Any]:
        from upgrade_infra.operations.rollback import smoke

        env = self.env
        env.stop_services()
        old = {s: self.rep["from_versions"][s] for s in self.to}
        env.record.versions.update(old)
        env.save()
        try:
            env.start_services()
            sm = smoke(env)
            safe = bool(sm["passed"])
            detail = "old version starts and passes its smoke checks" if safe else \
                f"smoke checks fail: {'; '.join(sm['failed'][:3])}"
        except ServiceNotReady as e:
            safe, detail, sm = False, f"old version does not start: {e.message[:300]}", {}
        env.stop_services()
        verdict = "app-only rollback safe" if safe else "database restore needed"
        self.rep["compatibility"] = {"app_only_rollback_safe": safe, "verdict": verdict, "detail": detail,
                                     "old_versions": old, "smoke": sm}
        return {"safe": safe}

    def restore(self, ctx: Ctx) -> dict[str, Any]:
        """The restore-point rollback, fingerprinted before any service writes to the restored data."""
        from upgrade_infra.operations.rollback import rollback_steps

        env, rp_id = self.env, ctx.data["rp"]
        rp = snapshots.get(env.state, rp_id)
        steps = [s for s in rollback_steps(rp.strategy) if s.name not in SKIP_ROLLBACK_STEPS]
        cut = next(i for i, s in enumerate(steps) if s.name == "start_services")
        sub = begin_op(env, "rollback", command="migrate test: restore", parent=ctx.op, restore_point=rp_id,
                       from_versions=dict(env.record.versions), to_versions=dict(rp.versions),
                       data={"rp": rp_id, "auto": True, "reason": "migrate test", "strategy": rp.strategy,
                             "from_versions": dict(env.record.versions)})
        t0 = time.monotonic()
        full = self.full_before(ctx) if self.before else None
        try:
            run_steps(sub, steps[:cut])
            restored = fingerprint(env)
            diffs = [str(x) for x in full.diff(restored)] if full else ["no before fingerprint"]
            added: dict[tuple[str, str], int] = {}
            lost = rowdiff.resolve(self.conninfos(), self.captured, added=added) if self.captured else []
            run_steps(sub, steps[cut:])
        except StepFailed as e:
            end_op(sub, "failed", error=e.message)
            raise
        end_op(sub, "succeeded")
        ctx.data["quarantine_op"] = sub.op
        if self.integrity is not None:
            self.integrity.lost_values = lost
            self.integrity.accept_pure_inserts(added)
            for row in self.integrity.tables:  # declared tables were not counted before the migration
                if row["rows_before"] is None and (row["db"], row["table"]) in full.tables:
                    row["rows_before"] = full.tables[(row["db"], row["table"])]["rows"]
            self.rep["integrity"] = self.integrity.to_dict()
        self.rep.setdefault("reversibility", {})["restore_point"] = {
            "restore_point": rp_id, "exact": not diffs, "differences": diffs, "seconds": round(time.monotonic() - t0, 3),
            "verdict": f"returns the exact before fingerprints ({len(restored.tables)} tables, "
                       f"{restored.total_rows()} rows)" if not diffs else f"DIFFERS: {'; '.join(diffs[:3])}"}
        return {"exact": not diffs, "op": sub.op}

    def cleanup(self, ctx: Ctx) -> dict[str, Any]:
        if ctx.data.get("quarantine_op"):
            quarantine.delete(self.env, ctx.data["quarantine_op"])
        snapshots.delete(self.env, ctx.data["rp"])
        return {"dropped": ctx.data["rp"]}


def reset(r: Any, ctx: Ctx, s: Session, staging: str) -> str:
    """Back to the before state through the restore point; failing that, the staging env's own reset."""
    try:
        if "rp" not in ctx.data:
            raise BadInput("no restore point was taken")
        run_steps(ctx, [Step("restore", r.restore), Step("cleanup", r.cleanup)])
        r.rep["reset"] = {"status": "ok", "via": "restore point"}
        return "succeeded"
    except (StepFailed, BadInput) as e:
        r.rep["errors"].append(f"reset through the restore point failed: {e.message}")
    try:
        from upgrade_infra.staging.lifecycle import reset

        reset(s, staging)
        r.rep["reset"] = {"status": "ok", "via": "stage reset"}
        return "succeeded"
    except Exception as e:  # noqa: BLE001 - the report must still be written
        r.rep["reset"] = {"status": "failed", "error": str(e)[:500]}
        return "failed"
