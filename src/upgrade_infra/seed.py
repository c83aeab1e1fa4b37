"""The manifest's seed step: fills a newly created, empty environment with data."""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any

from . import runner, sql, templates

if TYPE_CHECKING:
    from .environments import Environment


def seed_argv(env: Environment, size_mb: float) -> tuple[list[str], dict[str, str], str]:
    spec = env.manifest.seed
    assert spec is not None
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
            "mb_per_s": round(added / 1e6 / seconds, 2) if seconds else None, "seeder": reported}
