"""How the figures grow with the data: restore points, rollback and staging at 16 MB, 1 GB and 10 GB.

    python benchmarks/scaling.py [--sizes 16,1024,10240] [--strategies clone,dump,fs,cow] [--json FILE]
                                 [--dir DIR | --image-dir DIR]

For each size, a private copy of the reference stack is seeded to that size, then per restore-point
strategy (``clone``, ``dump``, ``fs``, ``cow``):

* capture: ``snapshot create`` time and the service downtime it causes (``clone``/``cow``: the window
  the databases are closed, services stay up; ``fs``: services stopped; ``dump``: online, none);
* disk: what the restore point (and its spare) added to the filesystem right after the capture
  (statvfs used bytes before/after: reflinks share blocks, copies do not);
* rollback to that restore point: total (budgeted steps, to verified healthy) and its database step;
* staging ready time with the matching sync strategy (``dump`` → dump, ``fs`` → physical with
  ``--stop-source``, ``cow`` → cow; ``clone`` has none);
* the naive path beside them: a consistent ``pg_dump -Fd`` (the same dump as ``dump``, but the
  services stopped while it runs: its time is the downtime) and a rollback that ``pg_restore``\\s it
  over the live databases (stop, drop, create, restore, start, smoke checks).

Then the growth factor 1 GB → 10 GB of every figure. The restore points, quarantines and staging
envs of one strategy are deleted before the next, so the disk peak is about 5x the largest size.

As root, without ``--dir``, the state dir goes on a fresh XFS image formatted with ``reflink=1``
(sparse, in ``--image-dir``, mounted with ``-o loop,discard``, unmounted and removed at the end), so
``cow`` can run; elsewhere ``cow`` is reported as unavailable with the reason. Free disk is checked
first. With the defaults (``dump`` measured up to 1 GB: at 10 GB its capture, pg_restore rollback
and staging copy add about an hour on 2 cores) the three sizes took 39 minutes on a loaded 2-core
machine, 8 of them seeding 10 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from ruamel.yaml import YAML  # noqa: E402

from upgrade_infra.backends import pgtools  # noqa: E402
from upgrade_infra.backends.interface import PhysicalDataDir  # noqa: E402
from upgrade_infra.core import fsutil, sql  # noqa: E402
from upgrade_infra.operations import rollback  # noqa: E402
from upgrade_infra.operations.session import Session, stop_everything  # noqa: E402
from upgrade_infra.restore import cow as cow_rp  # noqa: E402
from upgrade_infra.restore import points as snapshots  # noqa: E402
from upgrade_infra.restore import quarantine  # noqa: E402
from upgrade_infra.restore.dump import restore_db  # noqa: E402
from upgrade_infra.restore.swap import owner_of  # noqa: E402
from upgrade_infra.stack.ports import holder_of  # noqa: E402
from upgrade_infra.staging import lifecycle as staging  # noqa: E402

STRATEGIES = ("cow", "fs", "clone", "naive", "dump")  # the cheap ones first
SYNC_FOR = {"dump": "dump", "fs": "physical", "cow": "cow"}
PA_STACK = REPO / "examples" / "pa-stack" / "stack.yaml"
PEAK_FACTOR = 5.0  # disk peak / seeded size (live + restore point + spare + quarantine + staging copy)
console = Console(width=200)


# -- setup -----------------------------------------------------------------------------------------
def port_window() -> tuple[int, int]:
    if os.environ.get("UPGRADE_INFRA_TEST_PORTS"):
        lo, hi = (int(x) for x in os.environ["UPGRADE_INFRA_TEST_PORTS"].split("-"))
        return lo, hi
    return 28000, 32000


def free_base(span: int) -> int:
    lo, hi = port_window()
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(lo, hi - span, 10)
        if all(holder_of(p) is None for p in range(base, base + span)):
            return base
    raise RuntimeError(f"no free block of {span} ports in {lo}-{hi}")


def write_stack(dest: Path) -> Path:
    """A private copy of the reference stack on free ports (its files linked in)."""
    yaml = YAML()
    data = yaml.load(PA_STACK.read_text())
    n, span = len(data["environments"]), 60
    base = free_base(10 * n + span)
    for i, env in enumerate(data["environments"].values()):
        env["port_base"] = base + 10 * i
    data["staging"]["port_range"] = [base + 10 * n, base + 10 * n + span - 1]
    dest.mkdir(parents=True, exist_ok=True)
    for entry in PA_STACK.parent.iterdir():
        if entry.name != PA_STACK.name and not entry.name.startswith("."):
            (dest / entry.name).symlink_to(entry)
    with open(dest / "stack.yaml", "w") as f:
        yaml.dump(data, f)
    return dest / "stack.yaml"


@contextmanager
def xfs_mount(image_dir: Path, size_bytes: int):
    """A sparse XFS image with reflink=1, loop-mounted (discard: deleted blocks go back to the host)."""
    image_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="uinfra-scaling-", dir=image_dir))
    os.chmod(work, 0o711)  # PostgreSQL runs as its own user below it
    img, mnt = work / "xfs.img", work / "mnt"
    mnt.mkdir()
    img.touch()
    os.truncate(img, size_bytes)
    try:
        subprocess.run(["mkfs.xfs", "-q", "-m", "reflink=1", str(img)], check=True)
        subprocess.run(["mount", "-o", "loop,discard", str(img), str(mnt)], check=True)
        os.chmod(mnt, 0o711)
        yield mnt
    finally:
        if os.path.ismount(mnt):
            r = subprocess.run(["umount", str(mnt)], check=False)
            if r.returncode != 0:
                subprocess.run(["umount", "-l", str(mnt)], check=False)
        shutil.rmtree(work, ignore_errors=True)


def used_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def fs_label(path: Path) -> str:
    kind = fsutil.fs_type(path)
    why = fsutil.reflink_problem(path)
    return f"{kind} ({'reflinks' if why is None else 'no reflinks'})"


# -- measurements ----------------------------------------------------------------------------------
def _step(r: dict, name: str) -> float | None:
    return next((t["duration_s"] for t in r.get("timeline") or r.get("steps") or [] if t["step"] == name), None)


def naive(env, row: dict) -> None:
    """What a dump-based tool does, at its fastest: services stopped while ``pg_dump -Fd -j2 -Z0``
    (uncompressed) writes a consistent dump; a rollback stops the services, ``pg_restore -j2``\\s it
    over the live databases (drop, create, restore), starts them and runs the smoke checks."""
    tmp = Path(tempfile.mkdtemp(prefix="naive-", dir=env.state.root))
    try:
        u0 = used_bytes(env.state.root)
        t0 = time.monotonic()
        env.stop_services()
        for db in env.manifest.postgres.databases:
            env.database.run_tool("pg_dump", pgtools.dump_args(env.database.tool_conninfo(db), tmp / db, 2,
                                                                compress=0), timeout=7200)
        env.start_services()
        row["naive_capture_s"] = row["naive_downtime_s"] = round(time.monotonic() - t0, 3)
        row["naive_disk_mb"] = round(max(0, used_bytes(env.state.root) - u0) / 1e6, 1)
        t0 = time.monotonic()
        env.stop_services()
        t_db = time.monotonic()
        for db in env.manifest.postgres.databases:
            restore_db(env, tmp / db, db, owner_of(env.conninfo(), db) or db)
        row["naive_rollback_db_s"] = round(time.monotonic() - t_db, 3)
        env.start_services()
        row["naive_verified"] = rollback.smoke(env)["passed"]
        row["naive_rollback_s"] = round(time.monotonic() - t0, 3)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def clean(s: Session, env, keep_points: bool = False) -> None:
    for rp in [] if keep_points else snapshots.list_points(s.state, env.name):
        snapshots.delete(env, rp.id)
    for q in quarantine.prune_plan(env, 0, now=time.time() + 1):
        quarantine.delete(env, q["op"])
    for name in s.state.env_names():
        if name != env.name:
            staging.destroy(s, name)


def one_strategy(s: Session, env, st: str, row: dict, dump_max_mb: float) -> None:
    fs = s.state.root
    if st == "naive":
        return naive(env, row)
    if st == "dump" and row["size_mb"] > dump_max_mb:
        row["dump_unavailable"] = f"not measured above --dump-max-mb {dump_max_mb:g}"
        return
    if st == "cow":
        why = cow_rp.problem(env)
        if why:
            row["cow_unavailable"] = why
            return
    sql.execute(env.conninfo(), "CHECKPOINT")
    fsutil.sync_fs(fs)
    u0 = used_bytes(fs)
    r = snapshots.create(env, st, command="benchmark")
    row[f"{st}_capture_s"] = r["capture_s"]
    row[f"{st}_downtime_s"] = r["downtime_s"] if r["downtime_s"] is not None else 0.0
    fsutil.sync_fs(fs)
    # statvfs delta (the live cluster's own WAL and preallocations move it by up to ~100 MB either way)
    row[f"{st}_disk_mb"] = round(max(0, used_bytes(fs) - u0) / 1e6, 1)
    row[f"{st}_healthy_after_capture"] = env.status().healthy
    rp = snapshots.get(s.state, r["restore_point"]["id"])
    rb = rollback.rollback(env, rp.id, command="benchmark")
    row[f"{st}_rollback_s"] = rb["total_s"]
    row[f"{st}_rollback_db_s"] = rb["database_step_s"]
    row[f"{st}_rollback_verified"] = rb["verified"]
    clean(s, s.env("production"), keep_points=st == "cow")  # disk back before staging (cow: reused)
    if st in SYNC_FOR:
        sr = staging.create(s, f"scale-{st}", strategy=SYNC_FOR[st], stop_source=st == "fs")
        row[f"{st}_staging_ready_s"] = sr["ready_s"]
        row[f"{st}_staging_mask_s"] = _step(sr, "mask")
    clean(s, s.env("production"))  # re-read: a physical sync restarted production's services


def measure(size_mb: float, strategies: tuple[str, ...], base: Path, dump_max_mb: float,
            save=lambda row: None) -> dict:
    root = Path(tempfile.mkdtemp(prefix="uinfra-scaling-", dir=base))
    os.chmod(root, 0o711)
    s = Session(write_stack(root / "stack"), root / "state")
    env = s.env("production")
    row: dict = {"size_mb": size_mb, "filesystem": fs_label(base)}
    try:
        t0 = time.monotonic()
        up = env.up(seed_mb=size_mb)
        row["seed_s"] = round(time.monotonic() - t0, 1)
        sizes = sql.database_sizes(env.conninfo())
        row["db_mb"] = round(sum(sizes[d] for d in s.manifest.postgres.databases) / 1e6, 1)
        row["pgdata_mb"] = round(fsutil.tree_bytes(env.capability(PhysicalDataDir).path) / 1e6, 1)
        row["seed"] = up.get("seed")
        for st in strategies:
            t = time.monotonic()
            one_strategy(s, s.env("production"), st, row, dump_max_mb)
            row[f"{st}_wall_s"] = round(time.monotonic() - t, 1)
            save(row)
            console.print(f"  {size_mb:g} MB {st}: done in {row[f'{st}_wall_s']}s", style="dim")
        row["wall_s"] = round(time.monotonic() - t0, 1)
        return row
    finally:
        stop_everything(s)
        shutil.rmtree(root, ignore_errors=True)


# -- output ----------------------------------------------------------------------------------------
FIGURES = [("capture_s", "capture s"), ("downtime_s", "downtime s"), ("rollback_s", "rollback s"),
           ("rollback_db_s", "rollback db step s"), ("staging_ready_s", "staging ready s"), ("disk_mb", "rp disk MB")]


def table_rows(rows: list[dict], strategies: tuple[str, ...]) -> list[list[str]]:
    out = []
    for r in rows:
        for st in strategies:
            if f"{st}_unavailable" in r:
                out.append([f"{r['size_mb']:g}", f"{r['db_mb']}", st, f"{r[f'{st}_unavailable']}"])
                continue
            out.append([f"{r['size_mb']:g}", f"{r['db_mb']}", st,
                        *[_fmt(r.get(f"{st}_{k}")) for k, _ in FIGURES]])
    return out


def _fmt(v) -> str:
    return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) and v < 1 else str(v))


def growth(rows: list[dict], strategies: tuple[str, ...], small: float = 1024, big: float = 10240) -> list[list[str]]:
    by = {r["size_mb"]: r for r in rows}
    if small not in by or big not in by:
        return []
    a, b = by[small], by[big]
    out = []
    for st in strategies:
        cells = []
        for k, _ in FIGURES:
            x, y = a.get(f"{st}_{k}"), b.get(f"{st}_{k}")
            cells.append(f"{y / x:.1f}x" if isinstance(x, (int, float)) and isinstance(y, (int, float)) and x > 0
                         else "-")
        out.append([st, *cells])
    return out


def show(rows: list[dict], strategies: tuple[str, ...]) -> None:
    t = Table(title=f"scaling ({os.cpu_count()} CPUs; filesystem: {rows[0]['filesystem'] if rows else '?'})")
    for c in ["size MB", "db MB", "strategy", *[h for _, h in FIGURES]]:
        t.add_column(c, justify="right")
    for cells in table_rows(rows, strategies):
        t.add_row(*cells)
    console.print(t)
    g = growth(rows, strategies)
    if g:
        t = Table(title="growth factor 1 GB → 10 GB")
        for c in ["strategy", *[h for _, h in FIGURES]]:
            t.add_column(c, justify="right")
        for cells in g:
            t.add_row(*cells)
        console.print(t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="16,1024,10240", help="MB of seeded data, comma-separated")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--dir", type=Path, help="run here (its filesystem decides whether cow can run)")
    ap.add_argument("--image-dir", type=Path, default=Path("/var/tmp"),
                    help="as root without --dir: where the sparse XFS image goes")
    ap.add_argument("--json", type=Path, help="also write the rows here (rewritten after each strategy)")
    ap.add_argument("--dump-max-mb", type=float, default=1024,
                    help="measure the dump strategy only up to this size (it is O(size) three times over)")
    a = ap.parse_args()
    sizes = [float(x) for x in a.sizes.split(",") if x]
    strategies = tuple(x for x in a.strategies.split(",") if x)
    need = int(max(sizes) * 1e6 * PEAK_FACTOR + 2e9)
    where = a.dir or a.image_dir
    free = fsutil.free_bytes(where)
    console.print(f"needs about {need / 1e9:.1f} GB of free disk at {where} (peak ~{PEAK_FACTOR:g}x the largest "
                  f"size + 2 GB); {free / 1e9:.1f} GB free")
    if free < need:
        sys.exit(f"not enough free disk at {where}: need {need / 1e9:.1f} GB, {free / 1e9:.1f} GB free "
                 "(use smaller --sizes or another --dir/--image-dir)")
    rows: list[dict] = []

    def run_all(base: Path) -> None:
        for size in sizes:
            console.print(f"seeding {size:g} MB on {fs_label(base)} …")
            def save(row: dict) -> None:
                if a.json:
                    a.json.write_text(json.dumps([*rows, row], indent=2, default=str))

            rows.append(measure(size, strategies, base, a.dump_max_mb, save))
            show(rows[-1:], strategies)

    if a.dir:
        a.dir.mkdir(parents=True, exist_ok=True)
        run_all(a.dir)
    elif os.geteuid() == 0 and shutil.which("mkfs.xfs"):
        with xfs_mount(a.image_dir, max(need, 8 << 30)) as mnt:
            run_all(mnt)
    else:
        console.print("not root or no mkfs.xfs: running in a temp dir; cow is measured only if it has reflinks")
        run_all(Path(tempfile.gettempdir()))
    show(rows, strategies)


if __name__ == "__main__":
    main()
