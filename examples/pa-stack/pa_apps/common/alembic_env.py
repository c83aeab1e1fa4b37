"""Shared body of every service's ``migrations/env.py``.

The URL comes from ``config.attributes["url"]`` (set by :class:`Migrator`);
offline (``--sql``) mode only needs the dialect, so no URL is required there.
"""
from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from pa_apps.common.db import sqlalchemy_url

_DIALECT_ONLY = "postgresql+psycopg://"


def run() -> None:
    url = context.config.attributes.get("url")
    if context.is_offline_mode():
        context.configure(
            url=sqlalchemy_url(url) if url else _DIALECT_ONLY,
            literal_binds=True,
            dialect_opts={"paramstyle": "named"},
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    if not url:
        raise RuntimeError("no database URL configured for online migration")
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()
