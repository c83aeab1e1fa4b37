"""Isolation guards: a staging environment never shares a port, directory, socket or database with
another environment, and nothing it is configured with points at production.

:func:`check` runs before anything of a staging environment is created or started. It works on the
backend-neutral interface only (ports, the paths the backend says are the environment's own, template
contexts, the database endpoints), and
renders each service's environment exactly as it will be started (manifest env, per-version env, the
staging overrides) to look for another environment's ports and paths.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from upgrade_infra.core.errors import RefusedToTouchProduction
from upgrade_infra.stack import templates

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment


def rendered_service(env: Environment, service: str) -> tuple[list[str], dict[str, str]]:
    """(argv, env vars) the service would get in ``env``: manifest + version env + staging overrides."""
    m = env.manifest
    spec = m.service(service)
    version = env.record.versions[service]
    vs = m.version_of(service, version)
    overrides = m.staging.overrides.get(service, {}) if env.kind == "staging" else {}
    ctx = env.service_context(service, version)
    variables = templates.render_env({**spec.env, **vs.env, **overrides}, ctx)
    return templates.build_argv(vs.command or spec.command, ctx), variables


def markers(other: Environment) -> list[tuple[str, re.Pattern[str]]]:
    """What would identify ``other`` inside a staging value: its ports and its directories."""
    out = [(f"{other.name}'s port {port} ({what})", re.compile(rf"(?<!\d){port}(?!\d)"))
           for what, port in other.ports.items()]
    for label, path in other.owned_paths().items():
        out.append((f"{other.name}'s {label} {path}", re.compile(re.escape(str(path)) + r"(?![\w.-])")))
    return out


def _overlap(a: Path, b: Path) -> bool:
    a, b = a.resolve(), b.resolve()
    return a == b or a.is_relative_to(b) or b.is_relative_to(a)


def _refuse(staging: Environment, problem: str, fix: str) -> RefusedToTouchProduction:
    return RefusedToTouchProduction(f"refusing staging environment {staging.name!r}: {problem}", fix=fix,
                                    environment=staging.name)


def check_layout(staging: Environment, others: list[Environment]) -> None:
    """Ports, directories, sockets and database endpoints are staging's own."""
    if staging.kind != "staging":
        raise _refuse(staging, f"it is a {staging.kind} environment", "stage commands act on staging envs only")
    if staging.name in staging.manifest.environments:
        raise _refuse(staging, "the name is one of the manifest's environments",
                      "choose another name, e.g. staging-2")
    mine = set(staging.ports.values())
    for o in others:
        if o.name == staging.name:
            continue
        shared = sorted(mine & set(o.ports.values()))
        if shared:
            raise _refuse(staging, f"ports {shared} belong to environment {o.name!r}",
                          "destroy the staging env and create it again (a new port block is allocated)")
        theirs_paths = o.owned_paths()
        for label, mine_p in staging.owned_paths().items():
            theirs = theirs_paths.get(label)
            if theirs is not None and _overlap(mine_p, theirs):
                raise _refuse(staging, f"its {label} {mine_p} overlaps {o.name!r}'s {theirs}",
                              "every environment keeps its files under state_dir/envs/<name>")
        # as the tool reaches them (services' addresses may repeat across isolated networks)
        theirs_db = {(i["host"], i["port"]) for i in o.db_info("tool").values()}
        for db, info in staging.db_info("tool").items():
            if (info["host"], info["port"]) in theirs_db:
                raise _refuse(staging, f"database {db!r} would be {o.name!r}'s ({info['host']}:{info['port']})",
                              "staging needs its own PostgreSQL cluster")


def check_services(staging: Environment, others: list[Environment]) -> None:
    """No rendered command or env var of a staging service names another environment's port or path."""
    found = [(label, pat) for o in others if o.name != staging.name for label, pat in markers(o)]
    for service in staging.manifest.start_order():
        argv, variables = rendered_service(staging, service)
        items = [("command", " ".join(argv))] + [(f"env {k}", v) for k, v in variables.items()]
        for where, value in items:
            for label, pat in found:
                if pat.search(value):
                    origin = (f"staging.overrides.{service}.{where[4:]}"
                              if where[4:] in staging.manifest.staging.overrides.get(service, {}) else
                              f"services.{service}.{'command' if where == 'command' else 'env.' + where[4:]}")
                    raise _refuse(staging, f"{service} {where} points at {label}",
                                  f"fix {origin} in {staging.manifest.path}: use placeholders such as "
                                  "{services.assistant.url} or {db.NAME.url}, which resolve to staging's own")


def check(staging: Environment, others: list[Environment]) -> dict[str, int | str]:
    """All guards; raises :class:`RefusedToTouchProduction` naming what would be shared."""
    check_layout(staging, others)
    check_services(staging, others)
    return {"environment": staging.name, "checked_against": ", ".join(o.name for o in others if o.name != staging.name),
            "postgres_port": staging.database.endpoint().port}
