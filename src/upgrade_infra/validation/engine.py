"""Run declared checks against an environment and report: the engine behind ``upgrade-infra validate``.

Upgrades (the guarded upgrade's watch window), rollbacks (post-rollback verification) and the CLI
all call :func:`validate`. Smoke = checks declared ``smoke: true`` plus every service's health probe
(always included, suite ``health``). One failing or crashing check never stops the others; ordinary
checks run on a small thread pool, ``exclusive`` kinds (performance, browser) one at a time afterwards
so they measure the stack and not the other checks.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upgrade_infra.core.errors import UnknownName, UpgradeInfraError
from upgrade_infra.core.redact import scrub
from upgrade_infra.core.state import StateDir, atomic_write_json
from upgrade_infra.stack import templates
from upgrade_infra.stack.manifest import CheckSpec, Manifest, Retention
from upgrade_infra.validation.baseline import Baseline, resolve_baseline
from upgrade_infra.validation.checks import CheckContext, Outcome, get_kind, parse_config

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment
    from upgrade_infra.backends.health import ProbeResult

HEALTH = "health"
WORKERS = 4


@dataclass
class CheckResult:
    name: str
    kind: str
    suite: str
    passed: bool
    message: str
    duration_s: float
    details: dict[str, Any] = field(default_factory=dict)
    error: bool = False  # could not run (unreachable, crashed), as opposed to an assertion failing
    smoke: bool = False

    @property
    def status(self) -> str:
        return "passed" if self.passed else ("error" if self.error else "failed")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status}


@dataclass
class ValidationReport:
    env: str
    results: list[CheckResult]
    started_at: float
    duration_s: float
    versions: dict[str, str] = field(default_factory=dict)
    suites: list[str] = field(default_factory=list)
    smoke_only: bool = False
    baseline: str | None = None
    report_dir: Path | None = None
    baseline_recorded: str | None = None

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.passed]

    def counts(self) -> dict[str, int]:
        out = {"passed": 0, "failed": 0, "error": 0}
        for r in self.results:
            out[r.status] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"environment": self.env, "passed": self.passed, "counts": self.counts(),
                "duration_s": round(self.duration_s, 3), "started_at": self.started_at, "versions": self.versions,
                "suites": self.suites, "smoke_only": self.smoke_only, "baseline": self.baseline,
                "report_dir": str(self.report_dir) if self.report_dir else None,
                "baseline_recorded": self.baseline_recorded,
                "results": [r.to_dict() for r in self.results]}

    def to_junit(self, path: Path) -> Path:
        from upgrade_infra.validation.junit import write_junit

        return write_junit(self, Path(path))

    def write(self, report_dir: Path) -> Path:
        """results.json and junit.xml into ``report_dir`` (secrets scrubbed)."""
        out = report_dir / "results.json"
        atomic_write_json(out, json.loads(scrub(json.dumps(self.to_dict(), default=str))), mode=0o600)
        self.to_junit(report_dir / "junit.xml")
        return out


# -- planning ---------------------------------------------------------------------------------------
def health_checks(m: Manifest, env: Environment) -> list[CheckSpec]:
    """Every service's declared health probe as a smoke check of suite ``health``."""
    out = []
    for svc in m.start_order():
        p = m.service(svc).health
        common = {"name": f"{svc} health", "suite": HEALTH, "service": svc, "smoke": True,
                  "timeout_s": p.timeout_s or 5.0}
        if p.http:
            out.append(CheckSpec(kind="http", path=p.http, expect={"status": p.expect_status}, **common))
        else:
            argv = templates.build_argv(p.command, env.service_context(svc))
            out.append(CheckSpec(kind="command", command=shlex.join(argv).replace("{", "{{").replace("}", "}}"),
                                 **common))
    return out


def plan(m: Manifest, env: Environment, suites: Iterable[str] | None = None,
         smoke_only: bool = False) -> list[CheckSpec]:
    checks = health_checks(m, env) + list(m.checks)
    if suites:
        wanted = set(suites)
        known = {c.suite for c in checks}
        unknown = sorted(wanted - known)
        if unknown:
            raise UnknownName(f"no checks in suite(s) {', '.join(unknown)} in {m.path}",
                              fix=f"use one of: {', '.join(sorted(known))}")
        checks = [c for c in checks if c.suite in wanted]
    if smoke_only:
        checks = [c for c in checks if c.smoke]
    return checks


# -- running ----------------------------------------------------------------------------------------
def run_check(spec: CheckSpec, ctx: CheckContext) -> CheckResult:
    t0 = time.monotonic()
    try:
        kind = get_kind(spec.kind)
        outcome = kind.run(spec, parse_config(spec), ctx)
    except UpgradeInfraError as e:
        outcome = Outcome.broken(e.one_line())
    except Exception as e:  # noqa: BLE001 - one crashing check never stops the others
        outcome = Outcome.broken(f"check crashed: {type(e).__name__}: {e}")
    details = json.loads(scrub(json.dumps(outcome.details, default=str)))
    return CheckResult(spec.name, spec.kind, spec.suite, outcome.passed, scrub(outcome.message),
                       round(time.monotonic() - t0, 3), details, outcome.error, spec.smoke)


REPORT_NAME = re.compile(r"^(?P<env>.+)-(?P<stamp>\d{8}-\d{6}\.\d{3})$")


def readiness_check(env: Environment, name: str) -> ProbeResult:
    """Run the declared check ``name`` as a readiness probe of ``env`` (injected into environments by
    the session: the backends cannot import validation)."""
    from upgrade_infra.backends.health import ProbeResult

    spec = next(c for c in env.manifest.checks if c.name == name)
    rdir = env.dir / "reports" / "readiness"
    rdir.mkdir(parents=True, exist_ok=True)
    r = run_check(spec, CheckContext.for_env(env, rdir))
    return ProbeResult(r.passed, f"check {name!r}: {r.message}", r.duration_s)


def report_dirs(state: StateDir, env: str) -> list[Path]:
    """Default report dirs of exactly ``env`` (not of ``env-2``), newest first."""
    root = state.root / "reports" / "validation"
    if not root.is_dir():
        return []
    mine = [p for p in root.iterdir() if p.is_dir() and (m := REPORT_NAME.match(p.name)) and m["env"] == env]
    return sorted(mine, key=lambda p: REPORT_NAME.match(p.name)["stamp"], reverse=True)  # type: ignore[index]


def prune_reports(state: StateDir, env: str, retention: Retention, *, keep_extra: int = 0, now: float | None = None,
                  dry_run: bool = False) -> list[str]:
    """Apply ``policies.retention`` to ``env``'s validation report dirs: keep the newest
    ``reports_keep_last`` (minus ``keep_extra`` slots for reports about to be written), and none older
    than ``max_age_days`` except the newest. Returns the names removed."""
    now = now or time.time()
    keep = max(1, retention.reports_keep_last - keep_extra)
    gone = []
    for i, d in enumerate(report_dirs(state, env)):
        old = now - d.stat().st_mtime > retention.max_age_days * 86400
        if i >= keep or (old and i > 0):
            gone.append(d.name)
            if not dry_run:
                state.remove(d, ignore_errors=True)
    return gone


def default_report_dir(env: Environment, keep: int | None = None) -> Path:
    """``<state>/reports/validation/<env>-<time>``; older report dirs of ``env`` go by the retention
    policy (``keep``: this many instead of ``policies.retention.reports_keep_last``)."""
    root = env.state.root / "reports" / "validation"
    now = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f".{int(now * 1000) % 1000:03d}"
    pol = env.manifest.policies.retention
    if keep is not None:
        pol = pol.model_copy(update={"reports_keep_last": keep})
    prune_reports(env.state, env.name, pol, keep_extra=1, now=now)
    return root / f"{env.name}-{stamp}"


def validate(env: Environment, suites: list[str] | None = None, *, smoke_only: bool = False,
             baseline: Baseline | str | Path | None = None, report_dir: Path | None = None,
             on_result: Callable[[CheckResult], None] | None = None, workers: int = WORKERS) -> ValidationReport:
    """Run the selected checks against ``env``; never raises for a failing check (see ``report.passed``).

    ``baseline``: a Baseline, an environment name, a JSON file, or None (the environment's own
    recorded baseline, else that of the environment it was copied from, else none).
    """
    m = env.manifest
    specs = plan(m, env, suites, smoke_only)
    base = resolve_baseline(env, baseline)
    rdir = Path(report_dir) if report_dir else default_report_dir(env)
    rdir.mkdir(parents=True, exist_ok=True)
    ctx = CheckContext.for_env(env, rdir, base)
    t_start, t0 = time.time(), time.monotonic()
    results: dict[int, CheckResult] = {}

    def one(i: int) -> None:
        results[i] = run_check(specs[i], ctx)
        if on_result:
            try:
                on_result(results[i])
            except Exception:  # noqa: BLE001 - a progress display must not stop validation
                pass

    exclusive = [i for i, s in enumerate(specs) if _exclusive(s)]
    shared = [i for i in range(len(specs)) if i not in exclusive]
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="check") as pool:
        list(pool.map(one, shared))
    # one at a time, and off the caller's thread: Playwright's sync API refuses a running event loop (Jupyter)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="check-exclusive") as pool:
        list(pool.map(one, exclusive))
    report = ValidationReport(env.name, [results[i] for i in range(len(specs))], t_start,
                              time.monotonic() - t0, dict(env.record.versions), sorted({s.suite for s in specs}),
                              smoke_only, base.label if base else None, rdir)
    report.write(rdir)
    return report


def _exclusive(spec: CheckSpec) -> bool:
    try:
        return get_kind(spec.kind).exclusive
    except UnknownName:
        return False


def validate_env(env: Environment, suites: list[str] | None = None, *, smoke_only: bool = False,
                 baseline: str | Path | None = None, report_dir: Path | None = None, junit: Path | None = None,
                 record: bool = False, baseline_out: Path | None = None,
                 on_result: Callable[[CheckResult], None] | None = None) -> ValidationReport:
    """``validate`` plus what the command line adds: an extra JUnit copy and recording the baseline."""
    from upgrade_infra.validation.baseline import record_baseline

    report = validate(env, suites, smoke_only=smoke_only, baseline=baseline, report_dir=report_dir,
                      on_result=on_result)
    if junit:
        report.to_junit(Path(junit))
    if record or baseline_out:
        report.baseline_recorded = str(record_baseline(env, report, Path(baseline_out) if baseline_out else None))
    return report
