"""Migration frameworks' own bookkeeping tables, recognised by name: the one list behind the
rollback's quarantine report (their rows are reported, never counted as lost writes) and the
migration rehearsal (their growth is the list of migrations a release applied, never an integrity
failure). Pure data.
"""

from __future__ import annotations

# table -> (framework, columns naming one applied migration, in preference order)
FRAMEWORKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "alembic_version": ("Alembic", ("version_num",)),
    "django_migrations": ("Django", ("app", "name")),
    "schema_migrations": ("Rails (or golang-migrate, Ecto)", ("version",)),
    "ar_internal_metadata": ("Rails", ("key", "value")),
    "flyway_schema_history": ("Flyway", ("version", "description")),
    "databasechangelog": ("Liquibase", ("id", "author", "filename")),
    "databasechangeloglock": ("Liquibase", ("id", "locked")),
    "knex_migrations": ("Knex", ("name",)),
    "knex_migrations_lock": ("Knex", ("index", "is_locked")),
    "migrations": ("TypeORM (n8n and others)", ("name",)),
    "SequelizeMeta": ("Sequelize", ("name",)),
    "_prisma_migrations": ("Prisma", ("migration_name",)),
    "__EFMigrationsHistory": ("Entity Framework", ("MigrationId",)),
    "__diesel_schema_migrations": ("Diesel", ("version",)),
}
TABLES = frozenset(FRAMEWORKS)


def is_bookkeeping(table: str) -> bool:
    return table in TABLES
