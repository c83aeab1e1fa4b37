"""Staging: time from `stage create` to a ready staging env (synced, masked, healthy), per strategy,
and `stage reset`, against the naive copy (`pg_dump -Fc` into a single-threaded `pg_restore`).

    python benchmarks/staging.py --size-mb 1024 [--strategies dump,physical] [--json] [--keep DIR]

Production (the reference stack) is seeded at --size-mb on a private copy with free ports. Each
strategy creates its own staging env from production, which is destroyed afterwards (the dump env
is reset first). ``physical`` copies production's stopped cluster (--stop-source): its outage is
reported. Targets (2-core machine, 1 GB): dump ready < 60 s; reset < 5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from tests.conftest import write_stack  # noqa: E402  (a private copy of the reference stack on free ports)
from upgrade_infra.core import sql  # noqa: E402
from upgrade_infra.operations.session import Session, stop_everything  # noqa: E402
from upgrade_infra.staging import lifecycle as staging  # noqa: E402


def _step(r: dict, name: str) -> float | None:
    return next((t["duration_s"] for t in r.get("timeline") or r.get("steps") or [] if t["step"] == name), None)


def create_row(s: Session, strategy: str) -> tuple[dict, dict]:
    r = staging.create(s, f"bench-{strategy}", strategy=strategy, stop_source=strategy == "physical")
    sync = r.get("sync") or {}
    row = {"what": f"stage create ({strategy})", "mb": r["mb"], "copy_s": r["copy_s"], "mb_per_s": r["mb_per_s"],
           "mask_s": _step(r, "mask"), "restore_point_s": _step(r, "restore_point"),
           "start_s": _step(r, "start_services"), "ready_s": r["ready_s"], "total_s": r["total_s"],
           "source_outage_s": sync.get("source_outage_s", 0.0), "healthy": s.env(r["created"]).status().healthy}
    return row, r


def reset_row(s: Session, name: str) -> dict:
    r = staging.reset(s, name)
    db = (_step(r, "stage_databases") or 0) + (_step(r, "swap_databases") or 0)
    return {"what": "stage reset", "ready_s": r["ready_s"], "wall_s": r["wall_s"], "database_s": round(db, 3),
            "stop_s": _step(r, "stop_services"), "start_s": _step(r, "start_services"), "verify_s": _step(r, "verify"),
            "healthy": s.env(name).status().healthy}


def naive_row(s: Session, target: str) -> dict:
    """pg_dump -Fc (compressed, one process) into pg_restore (one process), per database."""
    prod, st = s.env("production"), s.env(target)
    tmp = Path(tempfile.mkdtemp(prefix="uinfra-naive-"))
    t0 = time.monotonic()
    total = 0
    try:
        for db in s.manifest.postgres.databases:
            name = f"naive_{db}"
            sql.execute(st.conninfo(), sql.drop_database(name), sql.create_database(name, owner=db))
            out = tmp / f"{db}.dump"
            prod.database.run_tool("pg_dump", ["-Fc", "-d", prod.database.tool_conninfo(db)], stdout_path=out,
                                   timeout=7200)
            st.database.run_tool("pg_restore", ["-d", st.database.tool_conninfo(name)], stdin_path=out, timeout=7200)
            total += sql.database_sizes(prod.conninfo()).get(db, 0)
            sql.execute(st.conninfo(), sql.drop_database(name))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    secs = time.monotonic() - t0
    return {"what": "naive copy (pg_dump -Fc | pg_restore, no -j)", "mb": round(total / 1e6, 1),
            "copy_s": round(secs, 2), "mb_per_s": round(total / 1e6 / secs, 1)}


def run(size_mb: float, strategies: list[str], keep: Path | None) -> dict:
    root = keep or Path(tempfile.mkdtemp(prefix="uinfra-bench-staging-"))
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o711)
    stack = root / "stack" / "stack.yaml"
    s = Session(stack if stack.exists() else write_stack(root / "stack"), root / "state")
    rows: list[dict] = []
    try:
        up = s.env("production").up(seed_mb=size_mb)
        for strategy in strategies:
            row, r = create_row(s, strategy)
            rows.append(row)
            if strategy == "dump":
                rows.append(naive_row(s, r["created"]))
                rows.append(reset_row(s, r["created"]))
            staging.destroy(s, r["created"])
        dbs = sql.database_sizes(s.env("production").conninfo())
        return {"size_mb_requested": size_mb, "production_mb": round(sum(dbs.values()) / 1e6, 1),
                "seed": up.get("seed"), "rows": rows, "cpus": os.cpu_count()}
    finally:
        if keep is None:
            stop_everything(s)
            shutil.rmtree(root, ignore_errors=True)


def show(res: dict) -> None:
    t = Table(title=f"staging at {res['production_mb']} MB of production data ({res['cpus']} CPUs)")
    cols = ["what", "mb", "copy_s", "mb_per_s", "mask_s", "restore_point_s", "start_s", "ready_s", "total_s",
            "source_outage_s", "database_s", "wall_s", "healthy"]
    for c in cols:
        t.add_column(c)
    for r in res["rows"]:
        t.add_row(*("" if r.get(c) is None else str(r[c]) for c in cols))
    Console(width=220).print(t)
    by = {r["what"]: r for r in res["rows"]}
    ours, naive = by.get("stage create (dump)"), next((r for k, r in by.items() if k.startswith("naive")), None)
    if ours and naive:
        Console().print(f"copy: naive / dump strategy = {naive['copy_s'] / ours['copy_s']:.1f}x; "
                        f"dump ready in {ours['ready_s']:.1f}s (target < 60 s)")
    if "stage reset" in by:
        Console().print(f"reset: ready in {by['stage reset']['ready_s']:.1f}s (target < 5 s), database step "
                        f"{by['stage reset']['database_s']:.2f}s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=float, default=1024)
    ap.add_argument("--strategies", default="dump,physical")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", type=Path, help="state and stack here, left running (reused when present)")
    a = ap.parse_args()
    res = run(a.size_mb, a.strategies.split(","), a.keep)
    print(json.dumps(res, indent=2, default=str)) if a.json else show(res)


if __name__ == "__main__":
    main()
