"""FastAPI application factory for the assistant."""
from fastapi import FastAPI

from pa_apps.assistant import agents, conversations, status, users
from pa_apps.common.service import ServiceContext
from pa_apps.common.web import create_base_app


def create_app(ctx: ServiceContext) -> FastAPI:
    ctx.settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_base_app(ctx, title="PA Assistant")
    for module in (users, agents, conversations, status):
        app.include_router(module.router)
    return app
