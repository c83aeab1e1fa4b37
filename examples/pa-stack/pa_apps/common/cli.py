"""The command line shared by both services: serve, migrate, downgrade, sql, current."""
from __future__ import annotations

import argparse
import json
import logging
import sys

from sqlalchemy.exc import OperationalError

from pa_apps.common.db import make_engine
from pa_apps.common.logs import setup_logging
from pa_apps.common.migrator import BASE, MigrationError, Migrator, Relation
from pa_apps.common.releases import UnknownRelease, get_release, release_for_revision
from pa_apps.common.service import ServiceContext, ServiceSpec
from pa_apps.common.settings import ConfigError, Settings

EXIT_CONFIG = 2
EXIT_MIGRATION = 3


def _connect(spec: ServiceSpec, settings: Settings):
    settings.require("DATABASE_URL")
    engine = make_engine(settings.database_url)
    return engine, Migrator(spec.migrations, settings.database_url)


def _bring_to_release(spec: ServiceSpec, release_version: str, settings: Settings):
    """Migrate to the release head, or warn when the schema is already newer."""
    log = logging.getLogger(f"pa_apps.{spec.name}")
    release = get_release(release_version)
    engine, migrator = _connect(spec, settings)
    head = release.head(spec.name)
    current = Migrator.current(engine)
    relation = migrator.relation(current, head)
    if relation is Relation.AHEAD:
        log.warning(
            "schema is newer than release %s (database at %s, release head %s); "
            "not migrating", release.version, current, head,
        )
    elif relation is Relation.DIVERGED:
        raise MigrationError(
            f"database revision {current} is not on the lineage of release "
            f"{release.version} (head {head}); refusing to touch it"
        )
    elif relation is Relation.BEHIND:
        log.info("migrating %s schema %s -> %s (release %s)", spec.name, current or BASE, head, release.version)
        migrator.upgrade(head)
    else:
        log.info("%s schema already at %s (release %s)", spec.name, head, release.version)
    return release, engine, migrator


def cmd_serve(spec: ServiceSpec, args) -> int:
    settings = Settings.from_env()
    settings.require("DATABASE_URL", *spec.serve_env)
    release, engine, migrator = _bring_to_release(spec, args.release, settings)
    ctx = ServiceContext(spec, release, settings, engine, migrator)
    app = spec.create_app(ctx)
    import uvicorn

    logging.getLogger(f"pa_apps.{spec.name}").info(
        "serving %s release %s on http://%s:%d", spec.name, release.version, args.host, args.port
    )
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, log_level="info")
    return 0


def cmd_migrate(spec: ServiceSpec, args) -> int:
    _bring_to_release(spec, args.release, Settings.from_env())
    return 0


def cmd_downgrade(spec: ServiceSpec, args) -> int:
    release = get_release(args.release)
    engine, migrator = _connect(spec, Settings.from_env())
    current = Migrator.current(engine)
    head = release.head(spec.name)
    if migrator.downgrade(current, head):
        logging.getLogger(f"pa_apps.{spec.name}").info("downgraded %s -> %s", current, head)
    else:
        logging.getLogger(f"pa_apps.{spec.name}").info("already at %s", head)
    return 0


def _revision_of(spec: ServiceSpec, version: str) -> str:
    return BASE if version == BASE else get_release(version).head(spec.name)


def cmd_sql(spec: ServiceSpec, args) -> int:
    migrator = Migrator(spec.migrations, Settings.from_env().database_url)
    migrator.offline_sql(_revision_of(spec, args.from_), _revision_of(spec, args.to), sys.stdout)
    return 0


def cmd_current(spec: ServiceSpec, args) -> int:
    engine, _ = _connect(spec, Settings.from_env())
    revision = Migrator.current(engine) or BASE
    release = release_for_revision(spec.name, revision) or "unknown"
    if args.json:
        print(json.dumps({"service": spec.name, "revision": revision, "release": release}))
    else:
        print(f"{revision} {release}")
    return 0


def build_parser(spec: ServiceSpec) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m pa_apps.{spec.name}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="migrate to the release head, then serve HTTP")
    serve.add_argument("--release", required=True)
    serve.add_argument("--port", type=int, required=True)
    serve.add_argument("--host", default="127.0.0.1")
    serve.set_defaults(func=cmd_serve)
    for name, func, text in (
        ("migrate", cmd_migrate, "migrate to the release head and exit"),
        ("downgrade", cmd_downgrade, "alembic downgrade to the release head"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--release", required=True)
        p.set_defaults(func=func)
    sql = sub.add_parser("sql", help="print offline migration SQL (release or 'base')")
    sql.add_argument("--from", dest="from_", required=True)
    sql.add_argument("--to", required=True)
    sql.set_defaults(func=cmd_sql)
    current = sub.add_parser("current", help="print '<revision> <release>'")
    current.add_argument("--json", action="store_true")
    current.set_defaults(func=cmd_current)
    return parser


def main(spec: ServiceSpec, argv: list[str] | None = None) -> int:
    setup_logging()
    args = build_parser(spec).parse_args(argv)
    log = logging.getLogger(f"pa_apps.{spec.name}")
    try:
        return args.func(spec, args)
    except (ConfigError, UnknownRelease) as exc:
        log.error("%s", exc)
        return EXIT_CONFIG
    except MigrationError as exc:
        log.error("%s", exc)
        return EXIT_MIGRATION
    except OperationalError as exc:
        log.error("database unavailable: %s", str(exc.orig or exc).strip().splitlines()[0])
        return EXIT_MIGRATION
