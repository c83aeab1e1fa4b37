"""FastAPI plumbing shared by both services: probes, version, error mapping."""
from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from pa_apps.common.migrator import Migrator, Relation
from pa_apps.common.service import ServiceContext

probes = APIRouter()


def get_ctx(request: Request) -> ServiceContext:
    return request.app.state.ctx


# Route parameter type giving handlers the running service's context.
Ctx = Annotated[ServiceContext, Depends(get_ctx)]


def schema_state(ctx: ServiceContext) -> tuple[str | None, Relation]:
    """Current DB revision and how it relates to the release head (may raise)."""
    current = Migrator.current(ctx.engine)
    return current, ctx.migrator.relation(current, ctx.head)


@probes.get("/healthz")
def healthz():
    return {"status": "ok"}


@probes.get("/readyz")
def readyz(ctx: Ctx):
    try:
        current, relation = schema_state(ctx)
    except Exception as exc:  # DB down, auth failure, ...
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return JSONResponse({"status": "unavailable", "reason": f"database: {reason}"}, 503)
    body = {"revision": current, "release_head": ctx.head, "schema": relation.value}
    if relation in (Relation.EQUAL, Relation.AHEAD):
        return {"status": "ready", **body}
    return JSONResponse({"status": "not ready", **body}, 503)


@probes.get("/version")
def version(ctx: Ctx):
    try:
        db_revision = Migrator.current(ctx.engine)
    except Exception:
        db_revision = None
    return {
        "service": ctx.spec.name,
        "release": ctx.release.version,
        "revision": ctx.head,
        "db_revision": db_revision,
    }


def row_or_404(conn, query: str, params: dict, what: str) -> dict:
    """The one row a by-id lookup returns, as a dict; 404 naming ``what`` when there is none."""
    row = conn.execute(text(query), params).first()
    if row is None:
        raise HTTPException(404, f"{what} not found")
    return dict(row._mapping)


def _first_line(exc: DBAPIError) -> str:
    return str(exc.orig or exc).strip().splitlines()[0]


def create_base_app(ctx: ServiceContext, title: str, lifespan=None) -> FastAPI:
    log = logging.getLogger(f"pa_apps.{ctx.spec.name}")
    app = FastAPI(title=title, version=ctx.release.version, lifespan=lifespan)
    app.state.ctx = ctx
    app.include_router(probes)

    @app.exception_handler(IntegrityError)
    async def integrity_error(request: Request, exc: IntegrityError):
        return JSONResponse({"detail": "constraint violated", "error": _first_line(exc)}, 409)

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, exc: DBAPIError):
        log.error("database error on %s %s: %s", request.method, request.url.path, _first_line(exc))
        return JSONResponse({"detail": "database error", "error": _first_line(exc)}, 500)

    return app
