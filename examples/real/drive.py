"""Drive the whole upgrade cycle on the real apps of examples/real/ and print a transcript.

For each app: installs (cached) -> env up production (seeded) -> stage create staging ->
migrate test --on staging --to NEW -> upgrade production --to NEW -> rollback production ->
validate production, with table counts before the upgrade, after it and after the rollback, and the
data after the rollback checked exact against the data before the upgrade (fingerprints: row counts
and content hashes of every table). Every command is the real CLI; exit codes and times are printed.

    python examples/real/drive.py [prefect] [n8n] [--json reports/real-apps/summary.json]
    python examples/real/drive.py --rollbacks 10 prefect     # ten manual rollbacks in a row

Exit status: 0 when every app's cycle passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import install  # noqa: E402 (beside this script)

APPS = {
    # app -> its only service, the release production starts on, the release it is upgraded to
    # rewritten: tables the app itself rewrites every time it starts (whichever release): compared by
    # row count only after a rollback, since the old release's start touches them again
    "prefect": {"service": "prefect", "from": "3.6.20", "to": "3.9.1",
                "rewritten": {"block_type": "block types re-registered on every start (column updated)"}},
    "n8n": {"service": "n8n", "from": "1.121.3", "to": "1.123.5",
            "rewritten": {"workflow_entity": "n8n saves every active workflow when it activates it at start "
                                             "(TypeORM version column versionCounter)"}},
}
CLI = [sys.executable, "-m", "upgrade_infra"]


class Transcript:
    def __init__(self, app: str, stack: Path, state: Path) -> None:
        self.app, self.stack, self.state = app, stack, state
        self.rows: list[dict] = []

    def run(self, *args: str, timeout: float = 1800) -> tuple[int, dict | None, float]:
        argv = [*CLI, "--stack", str(self.stack), "--state-dir", str(self.state), "--json", *args]
        t0 = time.monotonic()
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        dt = time.monotonic() - t0
        try:  # the result document (a failing command prints its error document after it)
            out = json.JSONDecoder().raw_decode(p.stdout.strip())[0] if p.stdout.strip() else None
        except ValueError:
            out = {"stdout": p.stdout[-2000:]}
        row = {"command": "upgrade-infra " + " ".join(args), "exit": p.returncode, "seconds": round(dt, 1)}
        if p.returncode:
            row["error"] = (p.stderr.strip() or p.stdout.strip())[-1500:]
        self.rows.append(row)
        print(f"  [{self.app}] $ {row['command']:<62} exit {p.returncode}  {dt:6.1f}s", flush=True)
        if p.returncode:
            print("      " + row["error"].replace("\n", "\n      "), flush=True)
        return p.returncode, out, dt


def fingerprint(app: str, stack: Path, state: Path, env: str = "production"):
    from upgrade_infra.restore import fingerprint as fp
    from upgrade_infra.operations.session import session

    e = session(stack, state).env(env)
    db = next(iter(e.manifest.postgres.databases))
    return fp.fingerprint(e, count_only=[(db, t) for t in APPS[app]["rewritten"]])


def settled_fingerprint(app: str, stack: Path, state: Path, timeout: float = 120, interval: float = 5):
    """The fingerprint once two in a row, ``interval`` apart, agree: apps write in the background for a
    while after they start or are seeded (n8n flushes its insights buffer every 30 s)."""
    a = fingerprint(app, stack, state)
    deadline = time.monotonic() + timeout
    while True:
        time.sleep(interval)
        b = fingerprint(app, stack, state)
        if not a.diff(b) or time.monotonic() > deadline:
            return b
        a = b


SCHEMA_VERSION = {  # where each framework records the migrations applied
    "prefect": "SELECT 'alembic ' || string_agg(version_num, ',') FROM alembic_version",
    "n8n": "SELECT 'typeorm: ' || count(*) || ' migrations, last ' || (SELECT name FROM migrations ORDER BY id DESC "
           "LIMIT 1) FROM migrations",
}


def schema_version(app: str, stack: Path, state: Path) -> str:
    from upgrade_infra.core import sql
    from upgrade_infra.operations.session import session

    e = session(stack, state).env("production")
    try:
        return sql.fetch_value(e.conninfo(next(iter(e.manifest.postgres.databases))), SCHEMA_VERSION[app])
    except Exception as exc:  # noqa: BLE001 (reported, not fatal)
        return f"unknown: {exc}"


def counts(f) -> dict[str, int]:
    return {f"{t}": v["rows"] for (_db, t), v in sorted(f.tables.items())}


def cleanup(t: Transcript) -> None:
    if not t.state.exists():
        return
    for args in (("stage", "destroy", "staging"), ("env", "down", "production")):
        subprocess.run([*CLI, "--stack", str(t.stack), "--state-dir", str(t.state), *args],
                       capture_output=True, timeout=300)
    shutil.rmtree(t.state, ignore_errors=True)


def ensure_installs(app: str) -> dict:
    out = {}
    for key in ("from", "to"):
        v = APPS[app][key]
        cached = subprocess.run([sys.executable, str(HERE / "install.py"), app, v, "--check"]).returncode == 0
        t0 = time.monotonic()
        subprocess.run([sys.executable, str(HERE / "install.py"), app, v], check=True)
        dt = time.monotonic() - t0
        meta = json.loads((install.cache_root() / app / v / ".complete").read_text() or "{}")
        out[v] = {"cached_before": cached, "seconds_now": round(dt, 1), **meta}
        print(f"  [{app}] install {v}: {'cached' if cached else 'installed'} in {dt:.1f}s "
              f"(first install {meta.get('seconds')}s, {meta.get('bytes', 0) / 1e6:.0f} MB)", flush=True)
    return out


def default_state(app: str) -> Path:
    return Path(os.environ.get("REAL_APPS_STATE") or HERE / app / ".upgrade-infra")


def cycle(app: str, stack: Path | None = None, state: Path | None = None) -> dict:
    spec = APPS[app]
    stack = stack or HERE / app / "stack.yaml"
    t = Transcript(app, stack, state or default_state(app))
    cleanup(t)
    res: dict = {"app": app, "from": spec["from"], "to": spec["to"], "rewritten_on_start": spec["rewritten"],
                 "installs": ensure_installs(app)}
    to = f"{spec['service']}={spec['to']}"
    ok = True
    try:
        rc, up, _ = t.run("env", "up", "production")
        ok &= rc == 0
        res["env_up"] = up
        before = fingerprint(app, stack, t.state)
        res["counts_before"] = counts(before)
        steps = [("stage", "create", "staging"), ("migrate", "test", "--on", "staging", "--to", to)]
        for s in steps:
            rc, out, _ = t.run(*s)
            ok &= rc == 0
            if s[0] == "migrate":
                res["migrate_test"] = out
        before = settled_fingerprint(app, stack, t.state)  # again: right before the upgrade
        res["schema_before"] = schema_version(app, stack, t.state)
        res["counts_before"] = counts(before)
        rc, out, _ = t.run("upgrade", "production", "--to", to)
        ok &= rc == 0
        res["upgrade"] = {k: out.get(k) for k in ("outcome", "total_s", "downtime_s")} if out else None
        res["schema_after_upgrade"] = schema_version(app, stack, t.state)
        after_up = fingerprint(app, stack, t.state)
        res["counts_after_upgrade"] = counts(after_up)
        rc, out, dt = t.run("rollback", "production")
        ok &= rc == 0
        if rc:  # what a user does next, as the error says: finish it with `resume`
            t.run("resume", "production")
        res["schema_after_rollback"] = schema_version(app, stack, t.state)
        after_rb = fingerprint(app, stack, t.state)
        res["counts_after_rollback"] = counts(after_rb)
        res["rollback"] = {"exit": rc, "seconds": round(dt, 1),
                           "total_s": out.get("total_s") if isinstance(out, dict) else None}
        diffs = [str(d) for d in before.diff(after_rb)]
        res["exact_after_rollback"] = not diffs
        res["differences_after_rollback"] = diffs
        ok &= not diffs
        rc, out, _ = t.run("validate", "production")
        ok &= rc == 0
        rc, out, _ = t.run("status")
        if isinstance(out, dict) or isinstance(out, list):
            res["status"] = out
    finally:
        t.run("stage", "destroy", "staging")
        t.run("env", "down", "production")
        res["transcript"] = t.rows
        res["passed"] = bool(ok)
    print_counts(res)
    return res


def print_counts(res: dict) -> None:
    b, u, r = (res.get(k, {}) for k in ("counts_before", "counts_after_upgrade", "counts_after_rollback"))
    print(f"\n  [{res['app']}] table counts: before upgrade / after upgrade / after rollback")
    for table in sorted(set(b) | set(u) | set(r)):
        mark = "" if b.get(table) == r.get(table) else "   <- differs"
        print(f"    {table:<40} {b.get(table, '-')!s:>7} {u.get(table, '-')!s:>7} {r.get(table, '-')!s:>7}{mark}")
    print(f"  [{res['app']}] schema: before {res.get('schema_before')}; after upgrade "
          f"{res.get('schema_after_upgrade')}; after rollback {res.get('schema_after_rollback')}")
    print(f"  [{res['app']}] exact after rollback: {res.get('exact_after_rollback')}; "
          f"{'; '.join(res.get('differences_after_rollback', [])[:10])}")
    print(f"  [{res['app']}] {'PASSED' if res['passed'] else 'FAILED'}\n", flush=True)


def rollbacks(app: str, n: int, stack: Path | None = None, state: Path | None = None) -> dict:
    """n manual rollbacks in a row: upgrade then `rollback production`, each time checking the data exact."""
    spec = APPS[app]
    stack = stack or HERE / app / "stack.yaml"
    t = Transcript(app, stack, state or default_state(app))
    cleanup(t)
    ensure_installs(app)
    to = f"{spec['service']}={spec['to']}"
    results = []
    try:
        rc, _, _ = t.run("env", "up", "production")
        if rc:
            return {"app": app, "rounds": 0, "failures": n, "results": []}
        for i in range(n):
            before = settled_fingerprint(app, stack, t.state)
            rc_up, _, _ = t.run("upgrade", "production", "--to", to)
            rc_rb, out, dt = t.run("rollback", "production")
            if rc_rb:  # counted as a failure; `resume` (as the error says) brings production back for the next round
                t.run("resume", "production")
            after = fingerprint(app, stack, t.state)
            rc_st, st, _ = t.run("env", "status", "production")
            diffs = [str(d) for d in before.diff(after)]
            ok = rc_up == 0 and rc_rb == 0 and not diffs
            results.append({"round": i + 1, "upgrade_exit": rc_up, "rollback_exit": rc_rb,
                            "rollback_s": round(dt, 1), "exact": not diffs, "differences": diffs[:5], "ok": ok})
            print(f"  [{app}] round {i + 1}: upgrade exit {rc_up}, rollback exit {rc_rb} in {dt:.1f}s, "
                  f"data exact: {not diffs}", flush=True)
    finally:
        t.run("env", "down", "production")
    fails = sum(not r["ok"] for r in results)
    print(f"  [{app}] {n} manual rollbacks in a row: {fails} failure(s)")
    return {"app": app, "rounds": len(results), "failures": fails, "results": results, "transcript": t.rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("apps", nargs="*", help=f"default: all of {', '.join(APPS)}")
    ap.add_argument("--rollbacks", type=int, default=0, help="instead of the cycle: N manual rollbacks in a row")
    ap.add_argument("--json", type=Path, help="write the results here")
    a = ap.parse_args()
    a.apps = a.apps or list(APPS)
    if unknown := set(a.apps) - set(APPS):
        ap.error(f"unknown app(s) {', '.join(sorted(unknown))}; choose from {', '.join(APPS)}")
    t0 = time.monotonic()
    if a.rollbacks:
        results = [rollbacks(app, a.rollbacks) for app in a.apps]
        passed = all(r["failures"] == 0 for r in results)
    else:
        results = [cycle(app) for app in a.apps]
        passed = all(r["passed"] for r in results)
    total = time.monotonic() - t0
    print(f"real apps: {'PASSED' if passed else 'FAILED'} in {total:.0f}s")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"passed": passed, "seconds": round(total, 1), "apps": results}, indent=2,
                                     default=str))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
