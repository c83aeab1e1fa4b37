"""``kind: pytest`` - run a user's pytest suite against the environment; the result comes from its JUnit XML.

    - name: my own tests
      kind: pytest
      suite: user
      path: tests/stack          # relative to the stack dir
      args: ["-k", "not slow"]
      timeout_s: 120

The suite runs in a subprocess (same Python) with the environment handed in as variables:
``UPGRADE_INFRA_ENV``, ``UPGRADE_INFRA_<SERVICE>_URL`` and ``UPGRADE_INFRA_DB_<NAME>_URL``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from junitparser import JUnitXml
from junitparser.junitparser import JUnitXmlError
from pydantic import Field

from upgrade_infra.core.errors import CommandFailed
from upgrade_infra.core.redact import scrub
from upgrade_infra.validation.checks.base import CheckContext, KindConfig, Outcome, register_kind
from upgrade_infra.validation.checks.browser import slug
from upgrade_infra.validation.checks.command import env_vars

NO_TESTS = 5  # pytest's exit code when nothing was collected


class PytestConfig(KindConfig):
    timeout_s: float = Field(300, gt=0, le=7200)
    path: str = Field(..., description="test file or directory, relative to the stack dir")
    args: list[str] = Field([], description="extra pytest arguments")
    env: dict[str, str] = {}


def pytest_argv(python: str, path: str, junit: Path, args: list[str]) -> list[str]:
    return [python, "-m", "pytest", path, f"--junitxml={junit}", "-q", "-p", "no:cacheprovider", *args]


def pytest_issues(spec, cfg: PytestConfig, m) -> list:
    if not (m.stack_dir / cfg.path).exists():
        return [(("path",), f"{cfg.path} does not exist (relative to {m.stack_dir})", "fix the path")]
    return []


def summarize_junit(path: Path) -> tuple[dict[str, int], list[str]]:
    xml = JUnitXml.fromfile(str(path))
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    failed: list[str] = []
    suites = [xml] if xml._tag == "testsuite" else list(xml)
    for suite in suites:
        for case in suite:
            counts["tests"] += 1
            for res in case.result:
                kind = type(res).__name__.lower()
                if kind in ("failure", "error"):
                    counts["failures" if kind == "failure" else "errors"] += 1
                    failed.append(f"{case.classname}.{case.name}: {(res.message or '').splitlines()[0][:160]}")
                elif kind == "skipped":
                    counts["skipped"] += 1
    return counts, failed


@register_kind("pytest", PytestConfig, semantic=pytest_issues)
def run_pytest(spec, cfg: PytestConfig, ctx: CheckContext) -> Outcome:
    from upgrade_infra.core import runner

    junit = ctx.report_dir / "pytest" / f"{slug(spec.name)}.xml"
    junit.parent.mkdir(parents=True, exist_ok=True)
    env = runner.base_env({**env_vars(ctx), **{k: ctx.render(v) for k, v in cfg.env.items()}})
    argv = pytest_argv(sys.executable, cfg.path, junit, cfg.args)
    try:
        done = runner.run(argv, env=env, cwd=ctx.values["stack_dir"], timeout=cfg.timeout_s, check=False)
    except CommandFailed as e:
        return Outcome.broken(scrub(e.message))
    tail = scrub((done.stdout or done.stderr).strip().splitlines()[-1] if (done.stdout or done.stderr) else "")
    details = {"exit_code": done.returncode, "junit": str(junit), "summary": tail}
    if done.returncode == NO_TESTS:
        return Outcome.fail(f"no tests collected from {cfg.path}", **details)
    try:
        counts, failed = summarize_junit(junit)
    except (OSError, JUnitXmlError, SyntaxError) as e:
        return Outcome.broken(f"pytest exited {done.returncode} without a readable JUnit file ({e}): {tail}", **details)
    details.update(counts=counts, failed=failed[:10])
    if done.returncode != 0 or failed:
        return Outcome.fail(f"{len(failed)} of {counts['tests']} test(s) failed: " + "; ".join(failed[:3]), **details)
    return Outcome(True, f"{counts['tests']} test(s) passed ({counts['skipped']} skipped)", details)
