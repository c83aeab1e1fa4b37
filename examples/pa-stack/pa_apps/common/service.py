"""Service description + the runtime context handed to the web apps."""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from pa_apps.common.migrator import Migrator
from pa_apps.common.releases import Features, Release
from pa_apps.common.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    migrations: Path
    # factory for the FastAPI app (imported lazily so CLI commands stay fast)
    create_app: Callable[[ServiceContext], FastAPI]
    # environment variables that ``serve`` needs beyond DATABASE_URL
    serve_env: tuple[str, ...] = ()


def service_spec(name: str, serve_env: tuple[str, ...] = ()) -> ServiceSpec:
    """The spec of ``pa_apps.<name>``: migrations in ``<name>/migrations``,
    app factory ``pa_apps.<name>.app.create_app`` (imported only by ``serve``)."""

    def create_app(ctx: ServiceContext) -> FastAPI:
        return importlib.import_module(f"pa_apps.{name}.app").create_app(ctx)

    migrations = Path(__file__).resolve().parents[1] / name / "migrations"
    return ServiceSpec(name=name, migrations=migrations, create_app=create_app, serve_env=serve_env)


@dataclass
class ServiceContext:
    spec: ServiceSpec
    release: Release
    settings: Settings
    engine: Engine
    migrator: Migrator

    @property
    def head(self) -> str:
        return self.release.head(self.spec.name)

    @property
    def features(self) -> Features:
        return self.release.features
