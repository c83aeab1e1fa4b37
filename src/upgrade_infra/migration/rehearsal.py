"""``migrate test``: rehearse a release's migration on a staging environment and prove what it did.

Journaled steps (kind ``migrate-test``) on a staging env (production is refused)::

    stop_services -> fingerprint_before -> restore_point -> lint -> migrate (sampled, timed, canary reads)
    -> fingerprint_after -> integrity -> downgrade (declared downgrade, compare, upgrade again)
    -> validate (suites on the migrated staging) -> compatibility (old version on the migrated schema)
    -> restore (the restore-point rollback: fingerprints must equal the before state exactly; which rows
       lost values is resolved here) -> cleanup (restore point and quarantine dropped)

A crash or hang of the migration, or a failing step, skips to ``restore``: staging is always reset,
and the report still says what happened. The report is :mod:`.report`'s JSON + Markdown.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upgrade_infra.core.errors import BadInput, RefusedToTouchProduction, UpgradeInfraError
from upgrade_infra.core.lock import guard
from upgrade_infra.core.steps import Ctx, Step, StepFailed, begin_op, end_op, note, run_steps
from upgrade_infra.migration import execute, frameworks, integrity, lint, recovery, report, rowdiff
from upgrade_infra.migration.canary import Canary
from upgrade_infra.migration.reversibility import ReversibilitySteps, reset
from upgrade_infra.migration.sampler import LockSampler
from upgrade_infra.restore import points as snapshots
from upgrade_infra.restore.fingerprint import DataFingerprint, fingerprint
from upgrade_infra.stack.manifest import check_name

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment
    from upgrade_infra.operations.session import Session

DEFAULT_SUITES = ("health", "api", "workflow", "integration")
OPTIONAL_STEPS = ("lint", "downgrade", "validate", "compatibility")


def parse_targets(items: list[str]) -> dict[str, str]:
    """``["assistant=1.1.0", …]`` -> ``{"assistant": "1.1.0"}``."""
    out = {}
    for it in items:
        svc, sep, ver = it.partition("=")
        if not sep or not svc or not ver:
            raise BadInput(f"bad --to {it!r}", fix="write SERVICE=VERSION, e.g. --to assistant=1.1.0")
        out[check_name("service", svc.strip(), "--to")] = check_name("version", ver.strip(), "--to")
    return out


class Rehearsal(ReversibilitySteps):
    def __init__(self, env: Environment, to: dict[str, str], *, suites: list[str] | None, interval_s: float,
                 mode: str | None, canary: bool, expect: dict | None = None) -> None:
        self.env, self.to, self.mode, self.canary, self.expect = env, to, mode, canary, expect
        self.book_before: dict[str, dict[str, list[str]]] = {}
        m = env.manifest
        self.suites = suites or [s for s in DEFAULT_SUITES if s == "health" or any(c.suite == s for c in m.checks)]
        self.interval_s = interval_s
        self.before: DataFingerprint | None = None  # declared tables: shape only; the others counted and hashed
        self.after: DataFingerprint | None = None
        self.integrity: integrity.IntegrityResult | None = None
        self.captured: list[dict[str, Any]] = []
        mg = m.migration
        self.rep: dict[str, Any] = {
            "environment": env.name, "source": env.record.source, "from_versions": dict(env.record.versions),
            "to_versions": dict(to), "started_at": time.time(), "errors": [], "overhead": {},
            "thresholds": {"max_duration_s": mg.max_duration_s, "max_exclusive_lock_s": mg.max_exclusive_lock_s,
                           "timeout_s": mg.timeout_s}}

    def declared(self) -> list[tuple[str, str]]:
        """Tables the manifest says the migration may change. Around the migration only their shape is read
        (integrity never compares their content); their rows are counted after the migration by the
        integrity scan and before it from the restore point, and the reversibility proofs hash them from
        the restore point: all outside the migration's path."""
        d = integrity.whole_tables(integrity.expected_tables(self.env.manifest, self.to, self.expect))
        return [(db, t) for db, ts in d.items() for t in ts]

    def bookkeeping(self, fp: DataFingerprint) -> dict[str, dict[str, list[str]]]:
        """db -> bookkeeping table -> its entries (the migrations a framework recorded)."""
        return {db: {t: frameworks.entries(self.env.conninfo(db), t, list(fp.schema[db][t]["columns"]))
                     for t in tables} for db, tables in frameworks.bookkeeping_in(fp.schema).items() if tables}

    def conninfos(self) -> dict[str, str]:
        return {db: self.env.conninfo(db) for db in self.env.manifest.postgres.databases}

    # -- steps ------------------------------------------------------------------------------------
    def stop(self, ctx: Ctx) -> dict[str, Any]:
        return {"stopped": self.env.stop_services()}

    def fingerprint_before(self, ctx: Ctx) -> dict[str, Any]:
        self.before = fingerprint(self.env, shape_only=self.declared())
        self.book_before = self.bookkeeping(self.before)
        self.rep["overhead"]["fingerprint_before_s"] = self.before.seconds
        self.rep["size"] = {"before": sum(self.before.sizes.values())}
        return {"tables": len(self.before.tables), "rows": self.before.total_rows(), "seconds": self.before.seconds}

    def restore_point(self, ctx: Ctx) -> dict[str, Any]:
        label = "migrate test " + " ".join(f"{s}={v}" for s, v in self.to.items())
        rp = snapshots.capture(self.env, "clone", label=label, op=ctx.op)
        ctx.data["rp"] = rp.id
        note(ctx, restore_point=rp.id)
        return {"restore_point": rp.id, "capture_s": rp.capture_s}

    def lint(self, ctx: Ctx) -> dict[str, Any]:
        out = []
        for svc, ver in self.to.items():
            if not self.env.manifest.service(svc).sql:
                continue
            try:
                out.append(lint.lint(self.env, svc, self.rep["from_versions"][svc], ver).to_dict())
            except UpgradeInfraError as e:  # lint is advisory: say why it did not run
                out.append({"service": svc, "from": self.rep["from_versions"][svc], "to": ver, "findings": [],
                            "lock_hazards": 0, "error": e.one_line()})
        self.rep["lint"] = out
        return {"services": [x["service"] for x in out]}

    def migrate(self, ctx: Ctx) -> dict[str, Any]:
        assert self.before is not None
        mg = self.env.manifest.migration
        tables = {db: sorted(t for d, t in self.before.tables if d == db) for db in self.before.databases}
        sampler = LockSampler(self.conninfos(), self.interval_s, self.env.database.backend_cpu_s)
        canary = Canary(self.conninfos(), tables if self.canary else {}, mg.timeout_s)
        with sampler, canary:
            res = execute.run_migration(self.env, self.to, mg.timeout_s, self.mode)
        locks = sampler.result.to_dict()
        locks["canary"] = canary.to_dict()
        self.rep.update(migration=res, locks=locks, wal_bytes=locks.pop("wal_bytes"))
        self.env.stop_services()
        return {"status": res["status"], "duration_s": res["duration_s"], "wal_bytes": self.rep["wal_bytes"]}

    def fingerprint_after(self, ctx: Ctx) -> dict[str, Any]:
        assert self.before is not None
        self.after = after = fingerprint(self.env, shape_only=self.declared())
        self.rep["overhead"]["fingerprint_after_s"] = after.seconds
        self.rep["size"].update(after=sum(after.sizes.values()))
        self.rep["size"]["change_bytes"] = self.rep["size"]["after"] - self.rep["size"]["before"]
        self.rep["new_tables"] = sorted(f"{d}.{t}" for d, t in after.tables if (d, t) not in self.before.tables)
        self.rep["schema_changes"] = [str(x) for x in self.before.diff(after) if x.what not in ("rows", "content")]
        return {"seconds": after.seconds, "new_tables": self.rep["new_tables"]}

    def check_integrity(self, ctx: Ctx) -> dict[str, Any]:
        assert self.before is not None and self.after is not None
        res = integrity.check_env(self.env, self.before, self.after, self.to, self.expect)
        self.integrity = res
        self.rep["migrations_applied"] = frameworks.applied(self.book_before, self.bookkeeping(self.after))
        self.captured = rowdiff.capture(self.conninfos(), res.suspects, self.before, self.after)
        self.rep["integrity"] = res.to_dict()
        return {"passed": res.passed, "failures": len(res.failures)}

    def validate(self, ctx: Ctx) -> dict[str, Any]:
        from upgrade_infra.validation.engine import validate

        self.env.start_services()
        rep = validate(self.env, self.suites, report_dir=self.env.state.root / "reports" / "migration" / ctx.op)
        self.rep["validation"] = {"passed": rep.passed, "suites": self.suites,
                                  "counts": rep.to_dict().get("counts"),
                                  "failed": [f"{r.name}: {r.message}" for r in rep.results if not r.passed]}
        return {"passed": rep.passed}

def fresh_staging(s: Session, name: str) -> dict[str, Any]:
    """A staging env synced from production to rehearse on: synced again when it exists, else created."""
    from upgrade_infra.staging import lifecycle as staging

    return staging.sync_env(s, name) if name in s.state.env_names() else staging.create(s, name)


def _check_request(env: Environment, to: dict[str, str]) -> None:
    if env.kind != "staging":
        raise RefusedToTouchProduction(f"migrate test runs on staging only; {env.name!r} is a {env.kind} environment",
                                       fix="create one: `upgrade-infra stage create` and pass --on STAGING")
    if not to:
        raise BadInput("nothing to migrate", fix="pass --to SERVICE=VERSION")
    for svc, ver in to.items():
        env.manifest.version_of(svc, ver)
        if env.record.versions.get(svc) == ver:
            raise BadInput(f"{svc} in {env.name} already runs {ver}",
                           fix=f"sync {env.name} from production or pick another version")


def rehearse(s: Session, staging: str, to: dict[str, str], *, suites: list[str] | None = None,
             interval_s: float = 0.05, mode: str | None = None, skip: tuple[str, ...] = (), canary: bool = True,
             report_path: Path | None = None, expect: Path | None = None,
             accept: Path | None = None) -> dict[str, Any]:
    """Run the rehearsal; returns the report (``verdict.passed``) and writes it (JSON + .md).

    ``skip``: optional steps not to run (``lint``, ``downgrade``, ``validate``, ``compatibility``).
    ``expect``: a YAML file of more ``expected_changes`` (as ``--accept`` writes them). ``accept``: when
    the only failures are changes nobody declared, write the declarations that would pass into this
    file, for review (it is never applied by itself).
    """
    env = s.env(staging)
    _check_request(env, to)
    bad = sorted(set(skip) - set(OPTIONAL_STEPS))
    if bad:
        raise BadInput(f"cannot skip {', '.join(bad)}", fix=f"skip any of: {', '.join(OPTIONAL_STEPS)}")
    extra = integrity.load_expected(expect) if expect else None
    integrity.expected_tables(env.manifest, to)  # a missing or bad expected_changes_files entry: exit 2 now
    r = Rehearsal(env, to, suites=suites, interval_s=interval_s, mode=mode, canary=canary, expect=extra)
    with guard(env.state, env.name, f"migrate test {staging}"):
        ctx = begin_op(env, recovery.KIND, command=f"migrate test --on {staging}",
                       from_versions=r.rep["from_versions"], to_versions=dict(to), data={})
        first = [Step("stop_services", r.stop), Step("fingerprint_before", r.fingerprint_before),
                 Step("restore_point", r.restore_point), Step("lint", r.lint), Step("migrate", r.migrate)]
        second = [Step("fingerprint_after", r.fingerprint_after), Step("integrity", r.check_integrity),
                  Step("downgrade", r.downgrade), Step("validate", r.validate), Step("compatibility", r.compatibility)]
        r.rep["skipped"] = sorted(skip)
        try:
            run_steps(ctx, first, skip=set(skip))
            if r.rep["migration"]["status"] == "ok":
                run_steps(ctx, second, skip=set(skip))
        except StepFailed as e:
            r.rep["errors"].append(e.message)
        outcome = reset(r, ctx, s, staging)
        r.rep["steps"] = ctx.timeline
        r.rep["duration_total_s"] = round(time.monotonic() - ctx.started, 3)
        r.rep["verdict"] = report.evaluate(r.rep)
        passed = r.rep["verdict"]["passed"]
        if accept is not None:
            r.rep["accept"] = accept_changes(r, accept)
        error = r.rep["reset"].get("error") or (None if passed else "; ".join(r.rep["verdict"]["failures"][:3]))
        end_op(ctx, outcome if passed else "failed", error=error, passed=passed)
    path = report_path or env.state.root / "reports" / "migration" / f"{staging}-{ctx.op}.json"
    json_path, md_path = report.write(r.rep, path)
    r.rep.update(report_json=str(json_path), report_md=str(md_path))
    return r.rep


def accept_changes(r: Rehearsal, path: Path) -> dict[str, Any]:
    """Write what the rehearsal saw change without a declaration as ``expected_changes`` for review,
    when that is all that failed; else say what else failed (nothing is written)."""
    res = r.integrity
    if res is None:
        return {"written": False, "reason": "integrity was not checked (the migration did not finish)"}
    failing = {(t["db"], t["table"]) for t in res.tables if not t["ok"] and t["content"] != "dropped"}
    fixable = {f"integrity: {t['db']}.{t['table']}: {t['problem']}" for t in res.tables
               if (t["db"], t["table"]) in failing}
    # the rows that changed in a table to be declared are that change, named by row
    fixable |= {f"integrity: {f}" for f in res.failures
                if any(f.startswith(f"{db}.{t}.") for db, t in failing)}
    others = [f for f in r.rep["verdict"]["failures"] if f not in fixable]
    if others:
        return {"written": False, "reason": "other failures: " + "; ".join(others[:3])}
    changes = res.undeclared_changes()
    owners = {db: spec.owner for db, spec in r.env.manifest.postgres.databases.items()}
    doc: dict[str, dict[str, list[str]]] = {}
    for db, entries in changes.items():
        doc.setdefault(r.to[owners[db]], {})[db] = entries
    write_expected(path, doc, r)
    return {"written": True, "path": str(path), "expected_changes": doc}


def write_expected(path: Path, doc: dict[str, dict[str, list[str]]], r: Rehearsal) -> None:
    import io

    from ruamel.yaml import YAML

    frm = ", ".join(f"{k} {v}" for k, v in r.rep["from_versions"].items() if k in r.to)
    to = ", ".join(f"{k} {v}" for k, v in r.to.items())
    buf = io.StringIO()
    YAML().dump({"expected_changes": doc}, buf)
    header = (f"# Written by `upgrade-infra migrate test --accept` on {time.strftime('%Y-%m-%d %H:%M')} after a "
              f"rehearsal of {frm} -> {to} on {r.env.name}.\n"
              "# The migration changed these tables (or columns) without a declaration, and nothing else failed.\n"
              "# Review each entry, then include the file: migration.expected_changes_files: [<this file>]\n"
              "# in stack.yaml, or pass it to `migrate test --expect <this file>`.\n")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + buf.getvalue())
