"""FastAPI application factory for the automations service."""
from contextlib import asynccontextmanager

from fastapi import FastAPI

from pa_apps.automations import executions, webhook, workflows
from pa_apps.automations.runner import ExecutionRunner
from pa_apps.common.sealing import Sealer
from pa_apps.common.service import ServiceContext
from pa_apps.common.web import create_base_app


def create_app(ctx: ServiceContext) -> FastAPI:
    sealer = Sealer(ctx.settings.secret_key)
    runner = ExecutionRunner(ctx, sealer)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        runner.shutdown()

    app = create_base_app(ctx, title="PA Automations", lifespan=lifespan)
    app.state.sealer = sealer
    app.state.runner = runner
    for module in (workflows, webhook, executions):
        app.include_router(module.router)
    return app
