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
import shlex
import time
from typing import TYPE_CHECKING, Any

from upgrade_infra.core import runner, sql
from upgrade_infra.core.errors import CommandFailed
from upgrade_infra.stack import templates

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment


def before_start(env: Environment) -> bool:
    """Whether the seed runs before the services start (a service's one-off job) or after."""
    return bool(env.manifest.seed and env.manifest.seed.service)


def seed_argv(env: Environment, size_mb: float) -> tuple[list[str], dict[str, str], str]:
    """(argv, env vars, cwd) of a plain seed, run by the tool on its own host: addresses are the tool's."""
    spec = env.manifest.seed
    assert spec is not None and not spec.service
    ctx = {**env.base_context(view="tool"), "size_mb": f"{size_mb:g}"}
    argv = templates.build_argv(spec.command, ctx)
    cwd = templates.render(spec.cwd or "{stack_dir}", ctx)
    return argv, runner.base_env(templates.render_env(spec.env, ctx)), cwd


def _seed(env: Environment, size_mb: float) -> runner.Completed:
    spec = env.manifest.seed
    assert spec is not None
    if spec.service:  # the service's one-off job, wherever the backend runs its jobs
        res = env.run_job(spec.service, shlex.split(spec.command), timeout=3600, env=spec.env, cwd=spec.cwd,
                          size_mb=f"{size_mb:g}")
        if res.returncode != 0:
            tail = (res.stderr or res.stdout).strip().splitlines()[-5:]
            raise CommandFailed(f"{' '.join(res.argv[:4])}… exited {res.returncode}: {' | '.join(tail)}",
                                argv=res.argv, returncode=res.returncode, stderr=res.stderr[-2000:])
        return res
    argv, e, cwd = seed_argv(env, size_mb)
    return runner.run(argv, env=e, cwd=cwd, timeout=3600)


def run_seed(env: Environment, size_mb: float | None = None) -> dict[str, Any]:
    spec = env.manifest.seed
    assert spec is not None
    size = size_mb or float(os.environ.get("UPGRADE_INFRA_SEED_MB") or spec.size_mb)
    before = sum(sql.database_sizes(env.conninfo()).values())
    t0 = time.monotonic()
    res = _seed(env, size)
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
