"""Alembic migrations of the assistant database (see versions/)."""
