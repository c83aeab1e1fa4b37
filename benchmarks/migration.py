"""Rehearsal overhead: fingerprinting + lock sampling (+ canary reads) as % of the migration's own time.

Brings the reference stack's production up seeded at --size-mb, syncs a staging env from it, then on
staging, from the same restore point each time:

* bare:         the 1.0.0 -> 1.1.0 migration the way production runs it (new versions start and migrate),
                nothing else running;
* instrumented: fingerprint before + the same migration under the lock sampler and canary + fingerprint after,
                as ``migrate test`` takes them around the migration: of the tables the release declares it changes
                only the shape is read (their rows are counted by the integrity scan, which is timed apart), every
                other table is counted and hashed. (The reversibility proofs hash every table, from the restore
                point, outside the migration's path: printed as "full fingerprint", not in the target.)

overhead = (fingerprint_before + fingerprint_after + CPU the sampler used) / bare migration, medians over
--repeat alternating runs. The instrumented and bare migration times are printed too: on a shared machine
their difference is mostly noise, so the sampler's cost is measured directly (CPU of its thread and of its
server sessions; the wall time it spent in its queries is printed beside it).
Target: < 10% at 1 GB. For scale it also times the naive fingerprint (``md5(string_agg(row ORDER BY row))``
per table) on the same data, and the integrity constraint re-check (not part of the overhead target).

    python benchmarks/migration.py --size-mb 1024 [--json] [--repeat 1] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from psycopg import sql as psql  # noqa: E402

from tests.conftest import write_stack  # noqa: E402  (a private copy of the reference stack on free ports)
from upgrade_infra.core import sql  # noqa: E402
from upgrade_infra.migration import execute, integrity  # noqa: E402
from upgrade_infra.migration.canary import Canary  # noqa: E402
from upgrade_infra.migration.sampler import LockSampler  # noqa: E402
from upgrade_infra.operations import rollback  # noqa: E402
from upgrade_infra.operations.session import Session  # noqa: E402
from upgrade_infra.restore import points as snapshots  # noqa: E402
from upgrade_infra.restore import quarantine  # noqa: E402
from upgrade_infra.restore.fingerprint import fingerprint  # noqa: E402
from upgrade_infra.staging import lifecycle as staging  # noqa: E402

TO = {"assistant": "1.1.0", "automations": "1.1.0"}


def naive_fingerprint_s(env) -> float:
    t0 = time.monotonic()
    for db in env.manifest.postgres.databases:
        ci = env.conninfo(db)
        for r in sql.fetch(ci, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"):
            q = psql.SQL("SELECT md5(string_agg(t::text, '' ORDER BY t::text)) FROM {} t").format(
                psql.Identifier(r["tablename"]))
            sql.fetch(ci, q, read_only=True)
    return time.monotonic() - t0


def back_to(env, rp_id: str) -> None:
    res = rollback.rollback(env, to=rp_id, command="benchmark: back to the restore point")
    quarantine.delete(env, res["op"])  # the migrated databases the rollback set aside
    env.stop_services()


def bare(env) -> float:
    res = execute.run_migration(env, TO, env.manifest.migration.timeout_s)
    assert res["status"] == "ok", res
    env.stop_services()
    return res["duration_s"]


def instrumented(env) -> dict:
    cis = {db: env.conninfo(db) for db in env.manifest.postgres.databases}
    declared = integrity.expected_tables(env.manifest, TO)  # as the rehearsal: declared tables, shape only
    shaped = [(db, t) for db, ts in declared.items() for t in ts]
    before = fingerprint(env, shape_only=shaped)
    tables = {db: sorted(t for d, t in before.tables if d == db) for db in before.databases}
    with LockSampler(cis, backend_cpu=env.database.backend_cpu_s) as smp, Canary(cis, tables, env.manifest.migration.timeout_s):
        res = execute.run_migration(env, TO, env.manifest.migration.timeout_s)
    assert res["status"] == "ok", res
    env.stop_services()
    after = fingerprint(env, shape_only=shaped)
    t0 = time.monotonic()
    integrity.check_env(env, before, after, TO)
    return {"migration_s": res["duration_s"], "fp_before_s": before.seconds, "fp_after_s": after.seconds,
            "samples": smp.result.samples, "max_gap_s": round(smp.result.max_gap_s, 3),
            "sampler_busy_s": round(smp.result.busy_s, 3), "sampler_cpu_s": round(smp.result.cpu_s, 3),
            "integrity_s": round(time.monotonic() - t0, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=float, default=1024)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", type=Path, help="reuse/keep this work dir (production + staging stay)")
    a = ap.parse_args()
    root = a.keep or Path(tempfile.mkdtemp(prefix="uinfra-bench-mig-"))
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o711)
    stack = root / "stack" / "stack.yaml"
    s = Session(stack if stack.exists() else write_stack(root / "stack"), root / "state")
    try:
        t0 = time.monotonic()
        prod = s.env("production")
        prod.up(seed_mb=a.size_mb)
        if "stg" not in s.state.env_names():
            staging.create(s, "stg")
        setup_s = time.monotonic() - t0
        env = s.env("stg")
        env.stop_services()
        size = sum(sql.database_sizes(env.conninfo()).get(db, 0) for db in env.manifest.postgres.databases)
        rp = snapshots.capture(env, "clone", label="benchmark")
        naive_s = naive_fingerprint_s(env)
        full = fingerprint(env)
        full_s = full.seconds
        runs = []
        for _ in range(a.repeat):
            try:
                b = bare(env)
                back_to(env, rp.id)
                i = instrumented(env)
            finally:
                back_to(env, rp.id)  # staging is back to the restore point whatever happened
            runs.append({"bare_migration_s": b, **i})
        snapshots.delete(env, rp.id)
        env.start_services()
    finally:
        if not a.keep:
            for n in s.state.env_names():
                s.env(n).destroy()
            shutil.rmtree(root, ignore_errors=True)
    def med(key: str) -> float:
        return round(statistics.median(r[key] for r in runs), 3)

    bare_s, fp_s, sampling_s = med("bare_migration_s"), med("fp_before_s") + med("fp_after_s"), med("sampler_cpu_s")
    out = {"size_mb": round(size / 1e6, 1), "rows": full.total_rows(), "setup_s": round(setup_s, 1), "runs": runs,
           "bare_migration_s": bare_s, "instrumented_migration_s": med("migration_s"),
           "fingerprints_s": round(fp_s, 3), "sampling_cost_s": sampling_s, "sampler_busy_s": med("sampler_busy_s"),
           "overhead_pct": round(100 * (fp_s + sampling_s) / bare_s, 1),
           "naive_fingerprint_s": round(naive_s, 3), "full_fingerprint_s": full_s,
           "fingerprint_speedup_vs_naive": round(naive_s / full_s, 1),
           "integrity_checks_s": med("integrity_s"), "sampler_max_gap_s": med("max_gap_s"), "target_pct": 10}
    if a.json:
        print(json.dumps(out, indent=2))
        return
    print(f"migration rehearsal overhead at {out['size_mb']} MB ({out['rows']} rows; setup {out['setup_s']}s)")
    print(f"{'bare migration (1.0.0 -> 1.1.0, start mode)':<48}{bare_s:>9.2f} s")
    print(f"{'instrumented migration (sampler + canary)':<48}{out['instrumented_migration_s']:>9.2f} s")
    print(f"{'fingerprint before + after':<48}{fp_s:>9.2f} s")
    print(f"{'sampler CPU: its thread + its server sessions':<48}{sampling_s:>9.2f} s   "
          f"(wall time in its queries: {out['sampler_busy_s']:.2f} s)")
    print(f"{'overhead (fingerprints + sampling) / bare':<48}{out['overhead_pct']:>8.1f} %   (target < 10 %)")
    print(f"{'full fingerprint, every table (not in target)':<48}{full_s:>9.2f} s")
    print(f"{'naive fingerprint md5(string_agg ORDER BY)':<48}{naive_s:>9.2f} s   "
          f"({out['fingerprint_speedup_vs_naive']}x slower than the full one)")
    print(f"{'integrity re-check + declared tables counted':<48}{out['integrity_checks_s']:>9.2f} s   (not in target)")
    print(f"{'sampler max gap between samples':<48}{out['sampler_max_gap_s'] * 1000:>9.0f} ms")
    print(f"(medians of {len(runs)} alternating run(s); the restore proof hashes everything once more, "
          f"about the 'before' time)")


if __name__ == "__main__":
    main()
