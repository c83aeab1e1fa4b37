"""Masking leak check: how long the scan of every text/JSON column of a staging copy takes (one
COPY stream per table through one automaton), next to the copy itself, on the reference stack.

    python benchmarks/leak_scan.py [--size-mb 20] [--json]

Production (the reference stack) is seeded at --size-mb (default: the manifest's seed size) on a
private copy with free ports (UPGRADE_INFRA_TEST_PORTS narrows them); one staging env is created
from it with masking, then everything is stopped and removed. Prints the leak check's totals and
its seconds per table; scan_mb is the text scanned (cells as COPY sends them), scan_mb_per_s the
throughput to extrapolate from (the scan is linear in the text).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.support import PA_STACK  # noqa: E402
from upgrade_infra.operations.sandbox import private_stack  # noqa: E402  (a private copy on free ports)
from upgrade_infra.staging import lifecycle as staging  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=float, default=None)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    with private_stack(PA_STACK, "uinfra-bench-leak-", seed_mb=a.size_mb) as s:  # production up, seeded
        t0 = time.monotonic()
        r = staging.create(s, "bench-leak")
        step = {t["step"]: t["duration_s"] for t in r.timeline}
        scan = r.leak_check["scan"]
        out = {"mb": r.mb, "copy_s": step.get("copy_databases"), "mask_s": step.get("mask"),
               "leak_check_s": step.get("leak_check"), "scan_s": scan["seconds"], "scan_mb": scan.get("mb"),
               "scan_mb_per_s": scan.get("mb_per_s"), "tables": scan["tables"],
               "columns": scan["columns"], "values_looked_for": scan["needles"], "hits": len(scan["hits"]),
               "seconds_by_table": scan["seconds_by_table"], "create_total_s": round(time.monotonic() - t0, 3)}
    if a.json:
        print(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            print(f"{k:>18}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
