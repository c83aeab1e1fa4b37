"""``kind: command`` - run a program; assert its exit code and output.

    - name: assistant CLI answers
      kind: command
      suite: integration
      command: "{python} -c 'print(42)'"
      expect: {exit_code: 0, stdout_contains: ["42"]}

The command is split with shell rules, then each word is rendered (a value with spaces stays one
argument); it runs with the environment's URLs and DSNs as ``UPGRADE_INFRA_*`` variables.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from upgrade_infra.core import runner
from upgrade_infra.core.errors import CommandFailed
from upgrade_infra.core.redact import scrub
from upgrade_infra.stack import templates
from upgrade_infra.validation.checks.base import (
    CheckContext,
    KindConfig,
    Outcome,
    register_kind,
    template_issues,
)


class CommandExpect(BaseModel):
    model_config = ConfigDict(extra="forbid")
    exit_code: int | list[int] = 0
    stdout_contains: list[str] = []
    stderr_contains: list[str] = []
    stdout_matches: str | None = None

    @field_validator("stdout_contains", "stderr_contains", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("stdout_matches")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            re.compile(v)
        return v


class CommandConfig(KindConfig):
    command: str = Field(..., description="program and arguments (templated)")
    cwd: str | None = Field(None, description="working directory (templated; default: the stack dir)")
    env: dict[str, str] = {}
    expect: CommandExpect = Field(default_factory=CommandExpect)

    @field_validator("command")
    @classmethod
    def _splits(cls, v: str) -> str:
        try:
            if not shlex.split(v):
                raise ValueError("empty command")
        except ValueError as e:
            raise ValueError(f"cannot split the command: {e}") from None
        return v


def env_vars(ctx: CheckContext) -> dict[str, str]:
    """UPGRADE_INFRA_<SERVICE>_URL and UPGRADE_INFRA_DB_<NAME>_URL for everything in the environment."""
    out = {"UPGRADE_INFRA_ENV": ctx.env.name}
    for name, svc in ctx.values["services"].items():
        out[f"UPGRADE_INFRA_{_up(name)}_URL"] = svc["url"]
    for name, db in ctx.values["db"].items():
        out[f"UPGRADE_INFRA_DB_{_up(name)}_URL"] = db["url"]
    return out


def _up(name: str) -> str:
    return re.sub(r"[^A-Z0-9]", "_", name.upper())


def command_issues(spec, cfg: CommandConfig, m) -> list:
    out = (template_issues(("command",), cfg.command, m) + template_issues(("cwd",), cfg.cwd, m)
           + template_issues(("env",), cfg.env, m))
    if problem := templates.argv_secret_problem(cfg.command, "the check's env"):
        msg, _ = problem.split(" (fix: ", 1)
        out.append((("command",), msg, "pass it by environment: database URLs are already in "
                    "$UPGRADE_INFRA_DB_<NAME>_URL (e.g. sh -c 'pg_dump \"$UPGRADE_INFRA_DB_APP_URL\"'); "
                    "declare other secrets under the check's env"))
    return out


def run_argv(ctx: CheckContext, command: str, cwd: str | None, extra_env: dict[str, str],
             timeout: float) -> runner.Completed:
    argv = templates.build_argv(command, ctx.values)
    env = runner.base_env({**env_vars(ctx), **templates.render_env(extra_env, ctx.values)})
    where = ctx.render(cwd) if cwd else ctx.values["stack_dir"]
    return runner.run(argv, env=env, cwd=where, timeout=timeout, check=False)


@register_kind("command", CommandConfig, semantic=command_issues)
def run_command(spec, cfg: CommandConfig, ctx: CheckContext) -> Outcome:
    try:
        done = run_argv(ctx, cfg.command, cfg.cwd, cfg.env, cfg.timeout_s)
    except CommandFailed as e:
        return Outcome.broken(scrub(e.message))
    out, err = scrub(done.stdout), scrub(done.stderr)
    details = {"argv0": done.argv[0], "exit_code": done.returncode, "seconds": round(done.seconds, 3),
               "stdout_tail": out[-500:], "stderr_tail": err[-500:]}
    x, bad = cfg.expect, []
    codes = x.exit_code if isinstance(x.exit_code, list) else [x.exit_code]
    if done.returncode not in codes:
        tail = (err or out).strip().splitlines()[-3:]
        bad.append(f"exited {done.returncode} (expected {x.exit_code}): {' | '.join(tail)}")
    bad += [f"stdout does not contain {s!r}" for s in x.stdout_contains if s not in done.stdout]
    bad += [f"stderr does not contain {s!r}" for s in x.stderr_contains if s not in done.stderr]
    if x.stdout_matches and not re.search(x.stdout_matches, done.stdout):
        bad.append(f"stdout does not match {x.stdout_matches!r}")
    if bad:
        return Outcome.fail("; ".join(bad), **details)
    return Outcome(True, f"exit {done.returncode} in {done.seconds:.2f}s", details)
