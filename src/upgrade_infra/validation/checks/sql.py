"""``kind: sql`` - a read-only query on one of the environment's databases and its expected result.

    - name: no message without a conversation
      kind: sql
      suite: integration
      database: assistant
      query: "SELECT m.id FROM messages m LEFT JOIN conversations c ON c.id = m.conversation_id
              WHERE c.id IS NULL LIMIT 5"
      expect: {rows: 0}

Rows are JSON-like (``[{column: value}]``) for ``expect.json`` assertions, e.g. ``{path: "$[0].n", gte: 1}``.
The session is read-only and bounded by ``statement_timeout`` = the check's ``timeout_s``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Mapping
from typing import Any

from psycopg import Error as PsycopgError
from pydantic import BaseModel, ConfigDict, Field

from upgrade_infra.core import sql as sqllib
from upgrade_infra.core.errors import PostgresError
from upgrade_infra.core.redact import scrub
from upgrade_infra.validation.checks.assertions import JsonAssert, evaluate_all
from upgrade_infra.validation.checks.base import CheckContext, KindConfig, Outcome, register_kind
from upgrade_infra.validation.checks.request import render_value

SET_TIMEOUT = "SELECT set_config('statement_timeout', %s, false)"


class SqlExpect(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    rows: int | None = Field(None, ge=0, description="exact number of rows (invariants: 0)")
    min_rows: int | None = Field(None, ge=0)
    max_rows: int | None = Field(None, ge=0)
    json_: list[JsonAssert] = Field([], alias="json", description="assertions on the rows as a JSON list")


class SqlQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    database: str = Field(..., description="a database declared under postgres.databases")
    query: str
    params: dict[str, Any] | list[Any] | None = Field(
        None, description="bound parameters (templated): %(name)s or %s in the query")


class SqlConfig(KindConfig, SqlQuery):
    expect: SqlExpect = Field(default_factory=SqlExpect)


def database_issues(loc: tuple, database: str, m) -> list:
    if database not in m.postgres.databases:
        return [((*loc, "database"), f"unknown database {database!r}",
                 f"use one of: {', '.join(m.postgres.databases)}")]
    return []


def jsonable(v: Any) -> Any:
    if isinstance(v, decimal.Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, dt.datetime | dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, uuid.UUID | bytes | memoryview):
        return str(v) if not isinstance(v, bytes | memoryview) else bytes(v).hex()
    if isinstance(v, Mapping):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [jsonable(x) for x in v]
    return v


def run_query(ctx: CheckContext, q: SqlQuery, variables: Mapping[str, Any], timeout_s: float, *,
              read_only: bool = True) -> list[dict]:
    """Rows of ``q`` on a read-only session (raises PostgresError / psycopg.Error); ``read_only=False``
    only for a workflow's ``cleanup`` steps, which remove what the check wrote."""
    params = render_value(q.params, ctx, variables) if q.params is not None else None
    with sqllib.connect(ctx.env.conninfo(q.database), read_only=read_only,
                        connect_timeout=max(1, int(timeout_s))) as c:
        c.execute(SET_TIMEOUT, [f"{int(timeout_s * 1000)}ms"])
        cur = c.execute(q.query, params)
        return [jsonable(r) for r in cur.fetchall()] if cur.description else []


def row_problems(rows: list[dict], x: SqlExpect) -> list[str]:
    n, out = len(rows), []
    if x.rows is not None and n != x.rows:
        sample = scrub(str(rows[:3]))[:300]
        out.append(f"returned {n} row(s), expected {x.rows}" + (f"; first: {sample}" if rows else ""))
    if x.min_rows is not None and n < x.min_rows:
        out.append(f"returned {n} row(s), expected at least {x.min_rows}")
    if x.max_rows is not None and n > x.max_rows:
        out.append(f"returned {n} row(s), expected at most {x.max_rows}")
    return out + evaluate_all(x.json_, rows)


def query_error(q: SqlQuery, e: Exception) -> str:
    text = e.message if isinstance(e, PostgresError) else str(e).strip().splitlines()[0]
    return scrub(f"query on database {q.database!r} failed: {text}")


@register_kind("sql", SqlConfig, semantic=lambda spec, cfg, m: database_issues((), cfg.database, m))
def run_sql(spec, cfg: SqlConfig, ctx: CheckContext) -> Outcome:
    try:
        rows = run_query(ctx, cfg, {}, cfg.timeout_s)
    except (PostgresError, PsycopgError) as e:
        return Outcome.broken(query_error(cfg, e), database=cfg.database)
    details = {"database": cfg.database, "rows": len(rows), "sample": jsonable(rows[:3])}
    bad = row_problems(rows, cfg.expect)
    if bad:
        return Outcome.fail("; ".join(bad), **details)
    return Outcome(True, f"{len(rows)} row(s) as expected", details)
