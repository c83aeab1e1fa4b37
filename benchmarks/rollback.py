"""Rollback speed: restore point creation per strategy, our rollback vs the naive pg_restore one.

    python benchmarks/rollback.py --sizes 16,256,1024 [--json]

For each size (MB of seeded data) on a fresh private copy of the reference stack:

* restore point creation, per strategy (``clone``, ``dump``, ``fs``): capture time and service downtime;
* ours: an upgrade to the broken release 1.2.0 fails its smoke checks and rolls itself back (clone
  restore point + spare): rollback total (budgeted steps, to verified), its database step (the swap);
* naive: stop the services, ``pg_restore -j`` the ``pg_dump -Fd`` dump over the live databases (drop,
  create, restore), start the services, smoke checks: total and its database step;
* the ratio naive / ours for both.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from benchmarks.support import PA_STACK  # noqa: E402
from upgrade_infra.core import sql  # noqa: E402
from upgrade_infra.operations import rollback, upgrade  # noqa: E402
from upgrade_infra.operations.sandbox import private_stack  # noqa: E402  (a private copy on free ports)
from upgrade_infra.restore import points as snapshots  # noqa: E402
from upgrade_infra.restore.dump import restore_db  # noqa: E402
from upgrade_infra.restore.meta import rp_dir  # noqa: E402

STRATEGIES = ("clone", "dump", "fs")


def naive_rollback(env, rp) -> dict:
    """What a dump-based tool does: stop, restore the dump over the live databases, start, check."""
    t0 = time.monotonic()
    env.stop_services()
    t_db = time.monotonic()
    stop_s = t_db - t0
    for db, d in rp.databases.items():
        restore_db(env, rp_dir(env.state, rp.id) / d["dump"], db, d.get("owner") or db)
    db_s = time.monotonic() - t_db
    env.record.versions = dict(rp.versions)
    env.save()
    t_start = time.monotonic()
    env.start_services()
    start_s = time.monotonic() - t_start
    ok = rollback.smoke(env)["passed"]
    return {"total_s": round(time.monotonic() - t0, 3), "db_s": round(db_s, 3), "verified": ok,
            "stop_s": round(stop_s, 3), "start_s": round(start_s, 3)}


def measure(size_mb: float, strategies: tuple[str, ...]) -> dict:
    with private_stack(PA_STACK, "uinfra-bench-rb-", seed_mb=size_mb) as s:  # production up, seeded
        env = s.env("production")
        sizes = sql.database_sizes(env.conninfo())
        row: dict = {"size_mb": size_mb, "db_mb": round(sum(sizes[d] for d in s.manifest.postgres.databases) / 1e6, 1)}
        points = {}
        for st in strategies:
            r = snapshots.create(env, st)
            points[st] = r.restore_point
            row[f"rp_{st}_s"] = r.capture_s
            row[f"rp_{st}_downtime_s"] = r.downtime_s
        res = upgrade.upgrade(env, {svc: "1.2.0" for svc in s.manifest.services}, command="benchmark")
        rb = res.rollback
        row["ours_steps"] = {t["step"]: t["duration_s"] for t in rb.steps}
        row.update(ours_total_s=rb.total_s, ours_db_s=rb.database_step_s, ours_path=rb.staging_path,
                   ours_verified=rb.verified, ours_quarantined_rows=rb.quarantine.rows_new_total,
                   upgrade_downtime_s=res.downtime_s)
        if "dump" in points:
            nv = naive_rollback(env, points["dump"])
            row.update(naive_total_s=nv["total_s"], naive_db_s=nv["db_s"], naive_verified=nv["verified"],
                       naive_stop_s=nv["stop_s"], naive_start_s=nv["start_s"])
            row["ratio_total"] = round(nv["total_s"] / rb.total_s, 1)
            row["ratio_db"] = round(nv["db_s"] / max(rb.database_step_s, 1e-3), 1)
        return row


def show(rows: list[dict]) -> None:
    t = Table(title="rollback benchmark (seconds)")
    cols = ["size_mb", "db_mb", *[f"rp_{s}_s" for s in STRATEGIES], "rp_clone_downtime_s", "ours_total_s", "ours_db_s",
            "naive_total_s", "naive_db_s", "ratio_total", "ratio_db", "ours_verified"]
    for c in cols:
        t.add_column(c.replace("_s", "").replace("_", " "), justify="right")
    for r in rows:
        t.add_row(*[str(r.get(c, "")) for c in cols])
    Console().print(t)
    for r in rows:
        Console().print(f"{r['size_mb']:g} MB: ours {r['ours_total_s']}s (db step {r['ours_db_s']}s via {r['ours_path']}), "
                        f"naive {r.get('naive_total_s')}s (db step {r.get('naive_db_s')}s): "
                        f"{r.get('ratio_total')}x total, {r.get('ratio_db')}x database step")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="16,256")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    strategies = tuple(x for x in a.strategies.split(",") if x)
    rows = []
    for x in a.sizes.split(","):
        rows.append(measure(float(x), strategies))
        if not a.json:
            show(rows[-1:])
    if a.json:
        print(json.dumps(rows, indent=2))
    else:
        show(rows)


if __name__ == "__main__":
    main()
