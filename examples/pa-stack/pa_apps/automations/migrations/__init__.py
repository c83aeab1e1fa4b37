"""Alembic migrations of the automations database (see versions/)."""
