"""Programmatic Alembic: upgrade, downgrade, offline SQL and lineage checks."""
from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import TextIO

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Engine

BASE = "base"


class MigrationError(RuntimeError):
    """A requested migration is impossible (diverged branches, wrong direction)."""


class Relation(Enum):
    EQUAL = "equal"        # database is exactly at the target revision
    BEHIND = "behind"      # target is a descendant: upgrade needed
    AHEAD = "ahead"        # database is newer than the target (descendant of it)
    DIVERGED = "diverged"  # on another branch of the graph


class Migrator:
    def __init__(self, script_location: Path, database_url: str | None = None):
        self.script_location = Path(script_location)
        self.database_url = database_url
        self.script = ScriptDirectory.from_config(self.config())

    def config(self, output: TextIO | None = None) -> Config:
        cfg = Config(output_buffer=output or sys.stdout)
        cfg.set_main_option("script_location", str(self.script_location))
        cfg.attributes["url"] = self.database_url
        return cfg

    # -- revision graph -------------------------------------------------
    def ancestors(self, revision: str | None) -> set[str]:
        """``revision`` and every revision below it (``base`` included)."""
        if revision in (None, BASE):
            return {BASE}
        found = {BASE}
        stack = [revision]
        while stack:
            rev = self.script.get_revision(stack.pop())
            if rev is None or rev.revision in found:
                continue
            found.add(rev.revision)
            down = rev.down_revision
            stack.extend(down if isinstance(down, tuple) else ([down] if down else []))
        return found

    def relation(self, current: str | None, target: str) -> Relation:
        current = current or BASE
        if current == target:
            return Relation.EQUAL
        if current in self.ancestors(target):
            return Relation.BEHIND
        if target in self.ancestors(current):
            return Relation.AHEAD
        return Relation.DIVERGED

    # -- database state -------------------------------------------------
    @staticmethod
    def current(engine: Engine) -> str | None:
        """The database's alembic revision (None when never migrated)."""
        with engine.connect() as conn:
            if conn.execute(text("SELECT to_regclass('alembic_version')")).scalar() is None:
                return None
            heads = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        if len(heads) > 1:
            raise MigrationError(f"database has several alembic heads: {', '.join(heads)}")
        return heads[0] if heads else None

    # -- operations -----------------------------------------------------
    def upgrade(self, target: str) -> None:
        command.upgrade(self.config(), target)

    def downgrade(self, current: str | None, target: str) -> bool:
        """Downgrade to ``target``; returns False when already there."""
        relation = self.relation(current, target)
        if relation is Relation.EQUAL:
            return False
        if relation is not Relation.AHEAD:
            raise MigrationError(
                f"cannot downgrade from {current or BASE} to {target}: "
                f"{target} is not an ancestor of {current or BASE} ({relation.value})"
            )
        command.downgrade(self.config(), target)
        return True

    def offline_sql(self, start: str, end: str, output: TextIO) -> None:
        """Write the SQL of start -> end (either direction) to ``output``."""
        relation = self.relation(start, end)
        cfg = self.config(output)
        if relation is Relation.BEHIND:
            command.upgrade(cfg, f"{start}:{end}", sql=True)
        elif relation is Relation.AHEAD:
            command.downgrade(cfg, f"{start}:{end}", sql=True)
        elif relation is Relation.EQUAL:
            output.write(f"-- {start} == {end}: nothing to do\n")
        else:
            raise MigrationError(f"{start} and {end} are on different branches; no migration path")
