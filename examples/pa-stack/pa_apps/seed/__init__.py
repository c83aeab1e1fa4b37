"""Seeder for both databases: ``python -m pa_apps.seed --help``."""
