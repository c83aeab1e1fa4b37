"""The Compose backend beside the local one: rollback (ours vs naive), restore-point downtime and
staging-ready time, at each size, in one run.

    python benchmarks/compose.py [--sizes 16,1024] [--backends local,compose] [--json]
                                 [--engine NAME --bip CIDR]

For each backend and size (MB of seeded reference data) on a fresh private copy of the reference stack
(``examples/pa-stack`` for ``local``, ``examples/pa-stack-compose`` for ``compose``, under a unique
name on free ports):

* **restore points**: a ``clone`` restore point (capture time, services' downtime) and a ``dump`` one
  (``pg_dump -Fd -j``, online: the naive tool's backup);
* **ours**: ``upgrade`` 1.0.0 -> 1.1.0 (migrates the schema), then ``rollback``: total of the budgeted
  steps (to verified), its database step and phases;
* **naive**: ``upgrade`` to 1.1.0 again, then what a user does by hand with the dump: stop the apps,
  drop and recreate the databases, ``pg_restore -j`` the dump, start the old tags and wait until
  healthy (Compose: ``docker compose stop`` / ``up -d --wait`` of the old tags; local: the backend's
  stop/start), then the same smoke checks; timed end to end;
* both rollbacks are verified: data fingerprint and row counts equal to before the first upgrade;
* **staging ready**: ``stage create`` (dump strategy) until the staging environment is healthy.

Printed per size with both backends side by side and ours/naive ratios, then how each figure grows
with size (seconds per GB between the two sizes) and the load average (1 min) sampled during each run.

Engine: ``DOCKER_HOST`` when set; else a private dockerd (``--engine``/``--bip``, as root) started for
the run and stopped at the end (left running when it already answered). Everything made is removed:
the projects with their volumes, the state dirs.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from ruamel.yaml import YAML  # noqa: E402

from benchmarks.support import PA_STACK, write_stack  # noqa: E402
from upgrade_infra.backends import pgtools  # noqa: E402
from upgrade_infra.core import sql  # noqa: E402
from upgrade_infra.operations import rollback, upgrade  # noqa: E402
from upgrade_infra.operations.sandbox import private_root  # noqa: E402
from upgrade_infra.operations.session import Session, stop_everything  # noqa: E402
from upgrade_infra.restore import points as snapshots  # noqa: E402
from upgrade_infra.restore.fingerprint import fingerprint  # noqa: E402
from upgrade_infra.restore.meta import rp_dir  # noqa: E402
from upgrade_infra.stack.ports import free_block  # noqa: E402
from upgrade_infra.staging import lifecycle as staging  # noqa: E402

COMPOSE_STACK = REPO / "examples" / "pa-stack-compose" / "stack.yaml"
OLD, NEW = "1.0.0", "1.1.0"


# -- load ----------------------------------------------------------------------------------------
class LoadSampler:
    """The 1-minute load average every few seconds while a measurement runs."""

    def __init__(self, every: float = 5.0) -> None:
        self.every, self.samples = every, [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> LoadSampler:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.samples.append(os.getloadavg()[0])

    def summary(self) -> dict[str, float]:
        s = self.samples
        return {"min": round(min(s), 1), "mean": round(sum(s) / len(s), 1), "max": round(max(s), 1)}


# -- engine and stacks -----------------------------------------------------------------------------
@contextmanager
def compose_engine(name: str, bip: str):
    """DOCKER_HOST when set, else a private dockerd started here (stopped at the end unless reused)."""
    from upgrade_infra.backends.compose.engine import find_engine, start_private_engine
    from upgrade_infra.backends.compose.images import build_all

    started = None
    if os.environ.get("DOCKER_HOST"):
        e = find_engine()
    else:
        e = started = start_private_engine(name=name, bip=bip)
        os.environ["DOCKER_HOST"] = e.host
    try:
        for b in build_all(e, COMPOSE_STACK.parent):
            if not b.skipped:
                print(f"built {b.tag} in {b.seconds}s", file=sys.stderr)
        yield e
    finally:
        if started is not None:
            os.environ.pop("DOCKER_HOST", None)
            if not started.reused:
                started.stop()


def write_compose_stack(dest: Path) -> Path:
    """The example Compose stack's manifest under a unique name (so unique projects) on free ports."""
    yaml = YAML()
    data = yaml.load(COMPOSE_STACK.read_text())
    data["name"] = f"uixbench-{secrets.token_hex(3)}"
    base = free_block(70)
    data["environments"]["production"]["port_base"] = base
    data.setdefault("staging", {})["port_range"] = [base + 10, base + 69]
    dest.mkdir(parents=True, exist_ok=True)
    for entry in COMPOSE_STACK.parent.iterdir():
        if entry.name not in ("stack.yaml", ".env") and not entry.name.startswith("."):
            (dest / entry.name).symlink_to(entry)
    out = dest / "stack.yaml"
    with open(out, "w") as f:
        yaml.dump(data, f)
    return out


@contextmanager
def stack(backend: str, seed_mb: float):
    root = private_root(f"uinfra-bench-{backend}-")
    path = write_compose_stack(root / "stack") if backend == "compose" else write_stack(root / "stack", PA_STACK)
    s = Session(path, root / "state")
    try:
        t0 = time.monotonic()
        up = s.env("production").up(seed_mb=seed_mb)
        yield s, {"seed_s": round(time.monotonic() - t0, 1), "seed": up.seed}
    finally:
        try:
            if backend == "compose":
                for name in [*s.state.env_names(), "production"]:
                    try:
                        s.env(name).destroy()
                    except Exception as e:  # noqa: BLE001 - report, go on with the others
                        print(f"cleanup of {name}: {e}", file=sys.stderr)
            else:
                stop_everything(s)
        finally:
            shutil.rmtree(root, ignore_errors=True)


# -- the naive rollback ----------------------------------------------------------------------------
def naive_rollback(backend: str, env: Any, rp: snapshots.RestorePoint) -> dict[str, Any]:
    """Stop the apps, drop and recreate the databases, ``pg_restore -j`` the dump, start the old tags
    and wait for healthy, smoke checks: timed end to end."""
    services = list(env.manifest.services)
    t0 = time.monotonic()
    if backend == "compose":
        env.cli.run(env.project, [env.compose_file], "stop", *[env.compose_service(n) for n in services],
                    timeout=300, cwd=env.manifest.stack_dir)
    else:
        env.stop_services()
    t_db = time.monotonic()
    admin = env.conninfo()
    for db, d in rp.databases.items():
        owner = d.get("owner") or db
        sql.execute(admin, sql.drop_database(db), sql.create_database(db, owner=owner))
        pgtools.restore(env.database, db, rp_dir(env.state, rp.id) / d["dump"])  # -j pgtools.JOBS
    t_start = time.monotonic()
    env.record.versions = dict(rp.versions)  # the old tags
    env.save()
    if backend == "compose":
        env.backend_state.pop("pins", None)
        env.write_compose_file()
        env.cli.up(env.project, [env.compose_file], [env.compose_service(n) for n in services], wait_timeout=600)
    else:
        env.start_services()
    t_verify = time.monotonic()
    sm = rollback.smoke(env)
    t1 = time.monotonic()
    return {"total_s": round(t1 - t0, 3), "stop_s": round(t_db - t0, 3), "db_s": round(t_start - t_db, 3),
            "start_s": round(t_verify - t_start, 3), "verify_s": round(t1 - t_verify, 3), "smoke": sm["passed"]}


def check_same(env: Any, before: Any, what: str) -> dict[str, Any]:
    after = fingerprint(env)
    diff = [str(d) for d in before.diff(after)]
    return {f"{what}_fingerprint_equal": not diff, f"{what}_rows": after.total_rows(),
            **({f"{what}_diff": diff[:5]} if diff else {})}


# -- one backend at one size -------------------------------------------------------------------------
def progress(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def measure(backend: str, size_mb: float, staging_on: bool = True, repeat: int = 1) -> dict[str, Any]:
    row: dict[str, Any] = {"backend": backend, "size_mb": size_mb}
    with LoadSampler() as load, stack(backend, size_mb) as (s, seeded):
        env = s.env("production")
        sizes = sql.database_sizes(env.conninfo())
        row["db_mb"] = round(sum(sizes[d] for d in s.manifest.postgres.databases) / 1e6, 1)
        row["seed_s"] = seeded["seed_s"]
        progress(f"{backend} {size_mb:g} MB: seeded {row['db_mb']} MB in {row['seed_s']}s")
        before = fingerprint(env)
        row["rows_before"] = before.total_rows()

        clone = snapshots.create(env, "clone", label="bench")
        row.update(rp_clone_s=clone.capture_s, rp_clone_downtime_s=clone.downtime_s)
        snapshots.delete(env, clone.restore_point.id)
        dump = snapshots.create(env, "dump", label="bench: the naive backup")
        row.update(rp_dump_s=dump.capture_s, rp_dump_downtime_s=dump.downtime_s)
        dump_rp = snapshots.get(env.state, dump.restore_point.id)

        # ours: a real upgrade, then `rollback` (``repeat`` times: the machine may be shared)
        runs, first = [], None
        for _ in range(max(1, repeat)):
            up = upgrade.upgrade(env, {svc: NEW for svc in s.manifest.services}, strategy="clone", watch_s=0,
                                 command="benchmark")
            assert up.outcome == "succeeded", up.to_dict()
            env = s.env("production")
            t_load = os.getloadavg()[0]
            rb = rollback.rollback(env)
            env = s.env("production")
            runs.append({"total_s": rb.total_s, "load": round(t_load, 1), "verified": rb.verified,
                         "steps": {t["step"]: t["duration_s"] for t in rb.steps}})
            progress(f"{backend} {size_mb:g} MB: rollback ours {rb.total_s}s at load {t_load:.1f}")
            first = first or rb
        rb = first  # the table shows the first run; every run is in ours_repeat_s
        row["ours_runs"] = runs
        row["ours_repeat_s"] = [r["total_s"] for r in runs]
        row["ours_steps"] = {t["step"]: t["duration_s"] for t in rb.steps}
        row.update(ours_total_s=rb.total_s, ours_wall_s=rb.wall_s, ours_db_s=rb.database_step_s,
                   ours_verified=rb.verified, ours_path=rb.staging_path,
                   ours_start_s=row["ours_steps"].get("start_services"), ours_stop_s=row["ours_steps"].get("stop_services"))
        row.update(check_same(env, before, "ours"))

        # naive: the same upgrade, then the dump restored by hand
        up = upgrade.upgrade(env, {svc: NEW for svc in s.manifest.services}, strategy="clone", watch_s=0,
                             command="benchmark")
        assert up.outcome == "succeeded", up.to_dict()
        env = s.env("production")
        nv = naive_rollback(backend, env, dump_rp)
        progress(f"{backend} {size_mb:g} MB: rollback naive {nv['total_s']}s")
        env = s.env("production")
        row.update({f"naive_{k}": v for k, v in nv.items()})
        row.update(check_same(env, before, "naive"))
        row["ratio_total"] = round(rb.total_s / nv["total_s"], 3)  # ours / naive
        row["ratio_db"] = round((rb.database_step_s or 0) / max(nv["db_s"], 1e-3), 4)

        if staging_on:
            r = staging.create(s, "benchst", strategy="dump")
            row.update(staging_ready_s=r.ready_s, staging_total_s=r.total_s, staging_copy_s=r.copy_s,
                       staging_healthy=s.env(r.environment).status().healthy)
            staging.destroy(s, r.environment)
            progress(f"{backend} {size_mb:g} MB: staging ready in {r.ready_s}s")
    row["load"] = load.summary()
    row["verified"] = bool(row["ours_verified"] and row["ours_fingerprint_equal"] and row["naive_smoke"]
                           and row["naive_fingerprint_equal"] and row["ours_rows"] == row["rows_before"]
                           and row["naive_rows"] == row["rows_before"])
    return row


# -- output --------------------------------------------------------------------------------------------
METRICS = [  # (label, key, per-GB growth shown)
    ("data (MB in the databases)", "db_mb", False),
    ("restore point clone: capture s", "rp_clone_s", True),
    ("restore point clone: downtime s", "rp_clone_downtime_s", True),
    ("restore point dump (naive backup) s", "rp_dump_s", True),
    ("rollback ours: total s (to verified)", "ours_total_s", True),
    ("  ours: every run s (repeats)", "ours_repeat_s", False),
    ("  ours: stop services s", "ours_stop_s", True),
    ("  ours: database step (swap) s", "ours_db_s", True),
    ("  ours: start services s", "ours_start_s", True),
    ("rollback naive: total s (to verified)", "naive_total_s", True),
    ("  naive: stop s", "naive_stop_s", True),
    ("  naive: drop+create+pg_restore -j s", "naive_db_s", True),
    ("  naive: up old tags, healthy s", "naive_start_s", True),
    ("  naive: smoke checks s", "naive_verify_s", True),
    ("ours / naive (total)", "ratio_total", False),
    ("ours / naive (database step)", "ratio_db", False),
    ("staging ready (dump) s", "staging_ready_s", True),
    ("verified (fingerprints, rows, smoke)", "verified", False),
    ("load avg 1 min (mean/max)", "load", False),
]


def fmt(v: Any) -> str:
    if isinstance(v, dict) and "mean" in v:
        return f"{v['mean']}/{v['max']}"
    if isinstance(v, list):
        return ", ".join(fmt(x) for x in v)
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1 else f"{v:.1f}"
    return "" if v is None else str(v)


def show(rows: list[dict[str, Any]]) -> None:
    con = Console(width=200)
    sizes = sorted({r["size_mb"] for r in rows})
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    by = {(r["backend"], r["size_mb"]): r for r in rows}
    t = Table(title="Compose beside local: rollback (ours vs naive), restore-point downtime, staging ready (seconds)")
    t.add_column("")
    for mb in sizes:
        for b in backends:
            t.add_column(f"{b} {mb:g} MB", justify="right")
    for label, key, _ in METRICS:
        t.add_row(label, *[fmt(by.get((b, mb), {}).get(key)) for mb in sizes for b in backends])
    con.print(t)
    if len(sizes) > 1:
        lo, hi = sizes[0], sizes[-1]
        g = Table(title=f"growth with size: seconds per GB of data between {lo:g} MB and {hi:g} MB")
        g.add_column("")
        for b in backends:
            g.add_column(b, justify="right")
        for label, key, per_gb in METRICS:
            if not per_gb:
                continue
            cells = []
            for b in backends:
                a, z = by.get((b, lo)), by.get((b, hi))
                if not a or not z or a.get(key) is None or z.get(key) is None:
                    cells.append("")
                    continue
                gb = (z["db_mb"] - a["db_mb"]) / 1000
                cells.append(f"{(z[key] - a[key]) / gb:.2f}" if gb > 0 else "")
            g.add_row(label, *cells)
        con.print(g)
    for r in rows:
        con.print(f"{r['backend']} {r['size_mb']:g} MB: ours {r['ours_total_s']}s (db {r['ours_db_s']}s via "
                  f"{r['ours_path']}) vs naive {r['naive_total_s']}s (db {r['naive_db_s']}s): ours/naive "
                  f"{r['ratio_total']}; seeded in {r['seed_s']}s; load {r['load']}; ours steps {r['ours_steps']}",
                  markup=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="16,1024")
    ap.add_argument("--backends", default="local,compose")
    ap.add_argument("--no-staging", action="store_true", help="skip the staging-ready measurement")
    ap.add_argument("--repeat", type=int, default=1, help="upgrade + rollback (ours) this many times")
    ap.add_argument("--engine", default="bench", help="name of the private dockerd (when DOCKER_HOST is unset)")
    ap.add_argument("--bip", default="172.31.249.1/24", help="its bridge address")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    backends = [b for b in a.backends.split(",") if b]
    sizes = [float(x) for x in a.sizes.split(",") if x]
    rows: list[dict[str, Any]] = []
    t0 = time.monotonic()
    cm = compose_engine(a.engine, a.bip) if "compose" in backends else contextmanager(lambda: iter([None]))()
    with cm:
        for mb in sizes:
            for b in backends:
                rows.append(measure(b, mb, not a.no_staging, a.repeat))
                if not a.json:
                    show(rows[-1:])
    res = {"rows": rows, "cpus": os.cpu_count(), "wall_s": round(time.monotonic() - t0, 1)}
    if a.json:
        print(json.dumps(res, indent=2, default=str))
    else:
        show(rows)
        Console().print(f"{os.cpu_count()} CPUs, whole run {res['wall_s']}s")


if __name__ == "__main__":
    main()
