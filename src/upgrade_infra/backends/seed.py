"""The manifest's seed step: fills a newly created, empty environment with data.

A plain seed (``seed: {command: …}``) runs once the services are up (it may need the schema they
migrate on start). A seed with ``service: NAME`` is that service's one-off job: it runs with the
service's env, cwd and installed version (like ``docker compose run``), *before* the services start,
so what it imports (workflows, users) is live from the services' first start; ``seed.env`` adds to
(or overrides) the service's env.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any

from upgrade_infra.core import runner, sql
from upgrade_infra.stack import templates

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment


def before_start(env: Environment) -> bool:
    """Whether the seed runs before the services start (a service's one-off job) or after."""
    return bool(env.manifest.seed and env.manifest.seed.service)


def seed_argv(env: Environment, size_mb: float) -> tuple[list[str], dict[str, str], str]:
    spec = env.manifest.seed
    assert spec is not None
    if spec.service:
        from upgrade_infra.backends.access import service_runtime

        svc_env, cwd, ctx = service_runtime(env, spec.service, size_mb=f"{size_mb:g}")
        argv = templates.build_argv(spec.command, ctx)
        if spec.cwd:
            cwd = templates.render(spec.cwd, ctx)
        return argv, {**svc_env, **templates.render_env(spec.env, ctx)}, str(cwd)
    ctx = {**env.base_context(), "size_mb": f"{size_mb:g}"}
    argv = templates.build_argv(spec.command, ctx)
    cwd = templates.render(spec.cwd or "{stack_dir}", ctx)
    return argv, runner.base_env(templates.render_env(spec.env, ctx)), cwd


def run_seed(env: Environment, size_mb: float | None = None) -> dict[str, Any]:
    spec = env.manifest.seed
    assert spec is not None
    size = size_mb or float(os.environ.get("UPGRADE_INFRA_SEED_MB") or spec.size_mb)
    before = sum(sql.database_sizes(env.conninfo()).values())
    argv, e, cwd = seed_argv(env, size)
    t0 = time.monotonic()
    res = runner.run(argv, env=e, cwd=cwd, timeout=3600)
    seconds = time.monotonic() - t0
    after = sum(sql.database_sizes(env.conninfo()).values())
    env.record.seeded = True
    env.save()
    reported = {}
    for line in reversed(res.stdout.strip().splitlines()):
        try:
            reported = json.loads(line)
            break
        except ValueError:
            continue
    added = after - before
    return {"size_mb_requested": size, "bytes_added": added, "seconds": round(seconds, 3),
            "mb_per_s": round(added / 1e6 / seconds, 2) if seconds else None, "seeder": reported,
            "service": spec.service, "before_start": bool(spec.service)}
