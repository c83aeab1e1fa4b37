"""``kind: workflow`` - a multi-step scenario; values saved by one step are used by later ones.

    - name: webhook runs the assistant
      kind: workflow
      suite: workflow
      timeout_s: 20
      steps:
        - name: trigger
          service: automations
          method: POST
          path: /webhook/daily-digest
          body: {text: "hello"}
          expect: {status: 202}
          save: {execution_id: $.execution_id}          # JSON path into the response
        - name: wait for the execution
          service: automations
          path: /api/executions/{execution_id}
          until: [{path: $.status, not_equals: running}]  # poll until these hold
          expect: {json: [{path: $.status, equals: success}]}
        - name: output stored
          sql: {database: automations, query: "SELECT output FROM executions WHERE id = %(id)s",
                params: {id: "{execution_id}"}}
          expect: {rows: 1, json: [{path: "$[0].output.reply", type: string}]}

A step is an HTTP request (the ``http`` kind's fields) or ``sql:`` (a read-only query). ``until``
polls the step every ``interval_s`` until its assertions hold or its ``timeout_s`` passes.

``cleanup:`` steps run after the steps, whether they passed or not, so a check that writes (a
conversation, an execution) leaves production as it found it; their ``sql:`` runs read-write (e.g.
``DELETE FROM conversations WHERE id = %(id)s``). A cleanup step naming a variable the steps never
saved (they failed before) is skipped; a cleanup step that fails fails the check.
"""

from __future__ import annotations

import string
import time
from typing import Annotated, Any

import httpx
from psycopg import Error as PsycopgError
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from upgrade_infra.core.errors import PostgresError
from upgrade_infra.core.redact import scrub
from upgrade_infra.validation.checks.assertions import JsonAssert, compile_path, evaluate_all, extract
from upgrade_infra.validation.checks.base import (
    CheckContext,
    KindConfig,
    Outcome,
    register_kind,
    template_issues,
)
from upgrade_infra.validation.checks.request import Expect, RequestSpec, build, problems, send
from upgrade_infra.validation.checks.request import client as new_client
from upgrade_infra.validation.checks.sql import (
    SqlExpect,
    SqlQuery,
    database_issues,
    query_error,
    row_problems,
    run_query,
)


class StepCommon(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str | None = None
    until: list[JsonAssert] = Field([], description="poll the step until these assertions hold")
    timeout_s: float | None = Field(None, gt=0, description="polling limit of this step (default: the check's)")
    interval_s: float = Field(0.25, gt=0, le=60)
    save: dict[str, str] = Field({}, description="variable -> JSON path into the result")

    @field_validator("save")
    @classmethod
    def _paths(cls, v: dict[str, str]) -> dict[str, str]:
        for var, path in v.items():
            if not var.isidentifier():
                raise ValueError(f"variable name {var!r} must be an identifier (letters, digits, _)")
            compile_path(path)
        return v


class HttpStep(StepCommon, RequestSpec):
    expect: Expect = Field(default_factory=Expect)


class SqlStep(StepCommon):
    sql: SqlQuery
    expect: SqlExpect = Field(default_factory=SqlExpect)


def _step_tag(v: Any) -> str:
    return "Sql" if (isinstance(v, dict) and "sql" in v) or isinstance(v, SqlStep) else "Http"


Step = Annotated[Annotated[HttpStep, Tag("Http")] | Annotated[SqlStep, Tag("Sql")], Discriminator(_step_tag)]


class WorkflowConfig(KindConfig):
    timeout_s: float = Field(30, gt=0, le=3600)
    steps: list[Step] = Field(..., min_length=1)
    cleanup: list[Step] = Field([], description="run after the steps, pass or fail, to remove what they wrote "
                                                "(sql here may write)")


def workflow_issues(spec, cfg: WorkflowConfig, m) -> list:
    out: list = []
    known: set[str] = set()  # variables saved by the steps so far
    for i, (part, st) in enumerate([("steps", x) for x in cfg.steps] + [("cleanup", x) for x in cfg.cleanup]):
        at = (part, i if part == "steps" else i - len(cfg.steps))
        if isinstance(st, SqlStep):
            out += database_issues((*at, "sql"), st.sql.database, m)
            out += template_issues((*at, "sql", "params"), st.sql.params, m, known)
        else:
            svc = st.service or spec.service
            if st.service and st.service not in m.services:
                out.append(((*at, "service"), f"unknown service {st.service!r}", f"use one of: {', '.join(m.services)}"))
            if not (st.url or svc):
                out.append((at, "needs a target: 'service' (+ 'path') or 'url'", "add 'service: <name>'"))
            for f in ("path", "url", "headers", "params", "body"):
                out += template_issues((*at, f), getattr(st, f), m, known)
        known |= set(st.save)
    return out


def _label(i: int, st: StepCommon) -> str:
    return f"step {i + 1}" + (f" {st.name!r}" if st.name else "")


def _run_http(st: HttpStep, ctx: CheckContext, variables: dict, service: str | None,
              client: httpx.Client) -> tuple[Any, list[str], dict]:
    sent = send(client, build(st, ctx, variables, st.service or service, client), st.service or service)
    info = {"request": sent.label(), "status": sent.response.status_code if sent.response is not None else None,
            "latency_ms": round(sent.latency_ms, 1)}
    if sent.response is None:
        return None, [sent.error or "no response"], info
    try:
        data = sent.json()
    except ValueError:
        data = sent.response.text
    return data, problems(sent, st.expect), info


def _run_sql(st: SqlStep, ctx: CheckContext, variables: dict, timeout: float) -> tuple[Any, list[str], dict]:
    info = {"database": st.sql.database}
    try:
        rows = run_query(ctx, st.sql, variables, timeout)
    except (PostgresError, PsycopgError) as e:
        return None, [query_error(st.sql, e)], info
    info["rows"] = len(rows)
    return rows, row_problems(rows, st.expect), info


def bind_value(v: Any, variables: dict[str, Any]) -> Any:
    """An expected value naming saved variables: ``"{key}"`` -> the value; ``"x {key}"`` -> formatted."""
    if not isinstance(v, str) or "{" not in v:
        return v
    if v.startswith("{") and v.endswith("}") and v[1:-1] in variables:
        return variables[v[1:-1]]
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(v) if f is not None}
    except ValueError:
        return v
    return v.format_map(variables) if names and names <= set(variables) else v


def _bind(asserts: list[JsonAssert], variables: dict[str, Any]) -> list[JsonAssert]:
    return [a.model_copy(update={a.op: bind_value(getattr(a, a.op), variables)}) for a in asserts]


def bound(st: HttpStep | SqlStep, variables: dict[str, Any]) -> HttpStep | SqlStep:
    """The step with saved variables substituted into its expected values."""
    if not variables:
        return st
    return st.model_copy(update={"until": _bind(st.until, variables), "expect": st.expect.model_copy(
        update={"json_": _bind(st.expect.json_, variables)})})


def _attempt(st, ctx, variables, service, client, timeout) -> tuple[Any, list[str], dict]:
    st = bound(st, variables)
    if isinstance(st, SqlStep):
        return _run_sql(st, ctx, variables, timeout)
    return _run_http(st, ctx, variables, service, client)


def _needs(st: HttpStep | SqlStep) -> set[str]:
    """Variables a step's templates name (``{conversation_id}``)."""
    fields = [st.sql.query, st.sql.params] if isinstance(st, SqlStep) else [st.path, st.url, st.headers,
                                                                              st.params, st.body]
    out: set[str] = set()

    def walk(v: Any) -> None:
        if isinstance(v, str):
            try:
                out.update(f.split(".")[0].split("[")[0] for _, f, _, _ in string.Formatter().parse(v) if f)
            except ValueError:
                pass
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    for f in fields[1:] if isinstance(st, SqlStep) else fields:  # a query's %(x)s are not templates
        walk(f)
    return out


def cleanup(cfg: WorkflowConfig, ctx: CheckContext, variables: dict[str, Any], service: str | None,
            client: httpx.Client) -> tuple[list[dict], list[str]]:
    """Run the ``cleanup`` steps (skipping those whose variables were never saved)."""
    trace, failed = [], []
    for i, st in enumerate(cfg.cleanup):
        label = "cleanup " + _label(i, st)
        missing = sorted(_needs(st) - set(variables) - set(ctx.values))
        if missing:
            trace.append({"step": label, "skipped": f"never saved: {', '.join(missing)}"})
            continue
        if isinstance(st, SqlStep):
            info: dict[str, Any] = {"database": st.sql.database}
            try:
                rows = run_query(ctx, st.sql, variables, st.timeout_s or 10, read_only=False)
                info["rows"], bad = len(rows), []
            except (PostgresError, PsycopgError) as e:
                bad = [query_error(st.sql, e)]
        else:
            _, bad, info = _run_http(bound(st, variables), ctx, variables, service, client)  # type: ignore[arg-type]
        info["step"] = label
        trace.append(info)
        if bad:
            failed.append(f"{label}: {'; '.join(bad)}")
    return trace, failed


@register_kind("workflow", WorkflowConfig, semantic=workflow_issues)
def run_workflow(spec, cfg: WorkflowConfig, ctx: CheckContext) -> Outcome:
    variables: dict[str, Any] = {}
    with new_client(min(cfg.timeout_s, 30)) as client:
        try:
            out = _run_steps(spec, cfg, ctx, variables, client)
        finally:
            if cfg.cleanup:
                trace, failed = cleanup(cfg, ctx, variables, spec.service, client)
    if cfg.cleanup:
        out.details["cleanup"] = trace
        if failed and out.passed:
            return Outcome.fail(f"cleanup failed (what the check wrote is still there): {'; '.join(failed)}",
                                **out.details)
        if failed:
            out.message += f"; cleanup failed too: {'; '.join(failed)}"
    return out


def _run_steps(spec, cfg: WorkflowConfig, ctx: CheckContext, variables: dict[str, Any],
               client: httpx.Client) -> Outcome:
    deadline = time.monotonic() + cfg.timeout_s
    trace: list[dict] = []
    for i, st in enumerate(cfg.steps):
        label = _label(i, st)
        step_deadline = min(deadline, time.monotonic() + (st.timeout_s or cfg.timeout_s))
        polls = 0
        while True:
            polls += 1
            left = max(0.5, deadline - time.monotonic())
            data, bad, info = _attempt(st, ctx, variables, spec.service, client, left)
            waiting = evaluate_all(bound(st, variables).until, data) if st.until and data is not None else []
            if not st.until or (data is not None and not waiting) or time.monotonic() >= step_deadline:
                break
            time.sleep(st.interval_s)
        info.update(step=label, polls=polls)
        trace.append(info)
        details = {"steps": trace, "variables": _short(variables)}
        out = Outcome.broken if data is None else Outcome.fail  # no response, or the query did not run
        if st.until and (data is None or waiting):
            why = "; ".join(waiting or bad or ["no result"])
            return out(f"{label}: not done after {polls} poll(s) in {st.timeout_s or cfg.timeout_s:g}s: {why}",
                       **details)
        if bad:
            return out(f"{label}: {'; '.join(bad)}", **details)
        for var, path in st.save.items():
            try:
                variables[var] = extract(data, path)
            except KeyError:
                return Outcome.fail(f"{label}: cannot save {var!r}: no value at {path}", **details)
    return Outcome(True, f"{len(cfg.steps)} step(s) passed", {"steps": trace, "variables": _short(variables)})


def _short(variables: dict) -> dict:
    return {k: (v if isinstance(v, int | float | bool) or v is None else scrub(str(v))[:200])
            for k, v in variables.items()}
