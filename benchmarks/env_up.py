"""Time from `env up` to healthy for the reference stack, and seeding throughput, per seed size.

    python benchmarks/env_up.py --sizes 20,200 [--json]

Each size runs on a fresh private copy of the reference stack (own state dir, free ports):
first `up` (cluster created, services installed and started, seeded), `down`, and a second `up`
(existing cluster and data: the everyday restart).
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from benchmarks.support import write_stack  # noqa: E402  (a private copy of the reference stack on free ports)
from upgrade_infra.operations.session import Session, stop_everything  # noqa: E402


def measure(size_mb: float) -> dict:
    root = Path(tempfile.mkdtemp(prefix="uinfra-bench-"))
    os.chmod(root, 0o711)
    s = Session(write_stack(root / "stack"), root / "state")
    try:
        t0 = time.monotonic()
        up = s.env("production").up(seed_mb=size_mb)
        wall = time.monotonic() - t0
        healthy = s.env("production").status().healthy
        seed = up.seed or {}
        t1 = time.monotonic()
        s.env("production").down()
        down_s = time.monotonic() - t1
        t2 = time.monotonic()
        s.env("production").up()
        restart_s = time.monotonic() - t2
        return {"size_mb": size_mb, "healthy": healthy, "first_up_s": round(wall, 2),
                "up_without_seed_s": round(wall - (seed.get("seconds") or 0), 2),
                "seed_s": seed.get("seconds"), "seed_mb": round((seed.get("bytes_added") or 0) / 1e6, 1),
                "seed_mb_per_s": seed.get("mb_per_s"), "down_s": round(down_s, 2), "restart_s": round(restart_s, 2)}
    finally:
        stop_everything(s)
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="20,200")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    rows = [measure(float(x)) for x in a.sizes.split(",")]
    if a.json:
        print(json.dumps(rows, indent=2))
        return
    t = Table(title="reference stack: env up to healthy, and seeding")
    for c in rows[0]:
        t.add_column(c)
    for r in rows:
        t.add_row(*[str(v) for v in r.values()])
    Console().print(t)


if __name__ == "__main__":
    main()
