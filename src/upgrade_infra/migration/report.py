"""The migration report: one JSON document, a readable text section, and the pass/fail verdict.

The verdict is computed here from the report's facts and the manifest's ``migration`` thresholds
(``max_duration_s``, ``max_exclusive_lock_s``; ``timeout_s`` ends a hung migration), so the same
facts always give the same verdict. Locks on tables the migration itself created are not counted:
nobody else can see such a table until the migration commits.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from upgrade_infra.core.redact import scrub
from upgrade_infra.core.results import Result
from upgrade_infra.core.state import atomic_write_json
from upgrade_infra.migration.sampler import WRITE_BLOCKING_MODES


def lock_label(mode: str | None) -> str:
    """``AccessExclusiveLock`` -> ``ACCESS EXCLUSIVE`` (the names PostgreSQL's docs use)."""
    if not mode:
        return "-"
    return re.sub(r"(?<!^)(?=[A-Z])", " ", mode.removesuffix("Lock")).upper()


def evaluate(rep: dict[str, Any]) -> dict[str, Any]:
    """``{passed, failures, warnings}`` from a report's facts and its ``thresholds``."""
    th = rep.get("thresholds", {})
    failures: list[str] = []
    warnings: list[str] = []
    mig = rep.get("migration") or {}
    if mig.get("status") != "ok":
        failures.append(f"migration {mig.get('status', 'not run')}: {mig.get('detail') or 'see the log'}")
    elif mig.get("duration_s", 0) > th.get("max_duration_s", float("inf")):
        failures.append(f"migration took {mig['duration_s']:.1f}s > max_duration_s {th['max_duration_s']:g}s")
    new_tables = set(rep.get("new_tables", []))
    for table, t in (rep.get("locks") or {}).get("per_table", {}).items():
        held = t.get("longest_exclusive_s") or 0.0
        if table in new_tables or held <= th.get("max_exclusive_lock_s", float("inf")):
            continue
        failures.append(f"{lock_label(t['longest_exclusive_mode'])} lock on {table} held {held:.1f}s > "
                        f"max_exclusive_lock_s {th['max_exclusive_lock_s']:g}s")
    integ = rep.get("integrity")
    if integ is not None:
        failures += [f"integrity: {f}" for f in integ.get("failures", [])]
    val = rep.get("validation")
    if val is not None and not val.get("passed"):
        failures.append(f"validation failed: {', '.join(val.get('failed', [])) or val.get('error') or '?'}")
    rev = rep.get("reversibility") or {}
    rp = rev.get("restore_point") or {}
    if rp and not rp.get("exact"):
        failures.append(f"restore-point rollback did not return the before state: "
                        f"{'; '.join(rp.get('differences', [])[:3]) or rp.get('error')}")
    down = rev.get("downgrade") or {}
    if down.get("declared") and not down.get("exact"):
        warnings.append(f"downgrade does not return the before data: "
                        f"{'; '.join(down.get('differences', [])[:3]) or down.get('error')}")
    comp = rep.get("compatibility") or {}
    if comp and not comp.get("app_only_rollback_safe"):
        warnings.append(f"old version on the migrated schema: {comp.get('detail')} -> rollback needs the database restored")
    for ln in rep.get("lint") or []:
        if ln.get("lock_hazards"):
            warnings.append(f"lint {ln['service']}: {ln['lock_hazards']} lock hazard(s) flagged by squawk")
    for e in rep.get("errors", []):
        failures.append(f"error: {e}")
    return {"passed": not failures, "failures": failures, "warnings": warnings}


def _n(v: Any) -> str:
    return "-" if v is None else str(v)


def _mb(b: int | None) -> str:
    return "-" if b is None else f"{b / 1e6:,.1f} MB"


def render(rep: dict[str, Any] | Result) -> str:
    """The readable section (Markdown): what a person reads in the runbook output or a terminal
    (of a report document, or of ``rehearse``'s result)."""
    if isinstance(rep, Result):
        rep = rep.to_dict()
    v = rep.get("verdict") or evaluate(rep)
    to = ", ".join(f"{s} {rep.get('from_versions', {}).get(s, '?')} -> {t}" for s, t in rep.get("to_versions", {}).items())
    out = [f"## Migration rehearsal on {rep.get('environment')}: {'PASS' if v['passed'] else 'FAIL'}", "", f"{to}", ""]
    out += [f"- FAIL: {f}" for f in v["failures"]] + [f"- warning: {w}" for w in v["warnings"]] + [""]
    mig, th = rep.get("migration") or {}, rep.get("thresholds", {})
    out.append(f"**Migration** ({mig.get('mode', '?')}): {mig.get('status', 'not run')}, "
               f"{mig.get('duration_s', 0):.2f}s (max {th.get('max_duration_s', '-')}s, timeout {th.get('timeout_s', '-')}s)")
    for svc, s in (mig.get("services") or {}).items():
        out.append(f"- {svc}: {s.get('status')} in {s.get('seconds', 0):.2f}s {s.get('detail') or ''}".rstrip())
    locks = rep.get("locks") or {}
    out += ["", f"**Locks** (sampled every {locks.get('interval_s', 0) * 1000:.0f} ms, {locks.get('samples', 0)} samples, "
            f"max gap {locks.get('max_gap_s', 0) * 1000:.0f} ms; limit {th.get('max_exclusive_lock_s', '-')}s)", "",
            "| table | longest exclusive lock | mode | longest write-blocking | modes seen |", "|---|---|---|---|---|"]
    quiet = 0
    for table, t in (locks.get("per_table") or {}).items():
        if not set(t["modes"]) & set(WRITE_BLOCKING_MODES):
            quiet += 1  # only ACCESS SHARE / ROW SHARE / ROW EXCLUSIVE: blocks nobody's reads or writes
            continue
        new = " (new)" if table in rep.get("new_tables", []) else ""
        out.append(f"| {table}{new} | {t['longest_exclusive_s']:.2f}s | {lock_label(t['longest_exclusive_mode'])} | "
                   f"{t['longest_write_blocking_s']:.2f}s | {', '.join(lock_label(m) for m in sorted(t['modes']))} |")
    if quiet:
        out.append(f"\n{quiet} more table(s) with only ACCESS SHARE / ROW EXCLUSIVE locks (block no one).")
    blocked = locks.get("blocked") or []
    out.append(f"\nBlocked sessions: {len(blocked)}" + "".join(
        f"\n- pid {b['pid']} ({b['mode']} on {b['db']}.{b['relation']}) waited {b['max_wait_s']:.2f}s, "
        f"blocked by {b['blocked_by']}: `{b['query'][:80]}`" for b in blocked[:10]))
    size = rep.get("size") or {}
    out += ["", f"**WAL** generated: {_mb(rep.get('wal_bytes'))}; **size** {_mb(size.get('before'))} -> "
            f"{_mb(size.get('after'))} ({(size.get('change_bytes') or 0) / 1e6:+,.1f} MB)"]
    if rep.get("schema_changes"):
        out += ["", "**Schema changes**:"] + [f"- {c}" for c in rep["schema_changes"][:30]]
    for m in rep.get("migrations_applied") or []:
        new = m["new"]
        out += ["", f"**Migrations applied** ({m['framework']}, {m['db']}.{m['table']}: {m['rows_before']} -> "
                f"{m['rows_after']} rows): " + (", ".join(f"`{x}`" for x in new[:30]) or "none")
                + (f" and {len(new) - 30} more" if len(new) > 30 else "")]
    out += _render_integrity(rep.get("integrity"))
    val = rep.get("validation")
    if val is None:
        out += ["", f"**Validation** on the migrated staging: {'skipped' if 'validate' in rep.get('skipped', []) else 'not run'}"]
    else:
        counts = val.get("counts") or {}
        counts = ", ".join(f"{n} {k}" for k, n in counts.items()) if isinstance(counts, dict) else str(counts)
        out += ["", f"**Validation** on the migrated staging: {'passed' if val.get('passed') else 'FAILED'} "
                f"({counts}) {', '.join(val.get('failed', []))}".rstrip()]
    rev = rep.get("reversibility") or {}
    d, rp = rev.get("downgrade") or {}, rev.get("restore_point") or {}
    skipped = set(rep.get("skipped", []))

    def state(step: str) -> str:
        return "skipped" if step in skipped else "not run"

    out += ["", "**Reversibility**",
            f"- downgrade: {d.get('verdict', state('downgrade'))}",
            f"- restore-point rollback: {rp.get('verdict', 'not run')}"]
    comp = rep.get("compatibility") or {}
    out += ["", f"**Compatibility**: {comp.get('verdict', state('compatibility'))}"
            + (f" ({comp['detail']})" if comp.get("detail") else "")]
    for ln in rep.get("lint") or []:
        out.append(f"\n**Lint** {ln['service']} {ln['from']} -> {ln['to']}: {len(ln['findings'])} finding(s), "
                   f"{ln['lock_hazards']} lock hazard(s)" + "".join(
                       f"\n- line {f['line']} `{f['rule']}`: {f['statement'][:90]}" for f in ln["findings"][:8]))
    ov = rep.get("overhead") or {}
    if ov:
        out += ["", f"Rehearsal overhead: fingerprints {ov.get('fingerprint_before_s', 0):.2f}s + "
                f"{ov.get('fingerprint_after_s', 0):.2f}s; staging reset: {rep.get('reset', {}).get('status', '?')}"]
    return scrub("\n".join(out)) + "\n"


def _render_integrity(integ: dict[str, Any] | None) -> list[str]:
    if integ is None:
        return ["", "**Integrity**: not run"]
    out = ["", f"**Integrity**: {'passed' if integ.get('passed') else 'FAILED'}", "",
           "| table | declared | rows before | rows after | content | columns changed | status |",
           "|---|---|---|---|---|---|---|"]
    for t in integ.get("tables", []):
        declared = ("bookkeeping" if t.get("bookkeeping") else "columns " + ", ".join(t["declared"])
                    if isinstance(t["declared"], list) else "yes" if t["declared"] else "no")
        status = ("ok" + (f" ({t['note']})" if t.get("note") else "")) if t["ok"] else "FAIL: " + t["problem"]
        out.append(f"| {t['db']}.{t['table']} | {declared} | {_n(t['rows_before'])} | "
                   f"{_n(t['rows_after'])} | {t['content']} | {', '.join(t['columns_changed'])} | {status} |")
    ins = integ.get("inserted") or []
    if ins:
        out.append("\nRows the migration inserted: " + ", ".join(
            f"{i['db']}.{i['table']} {i['rows']}" + (" (new table)" if i["table_new"] else "") for i in ins))
    bad = [c for c in integ.get("constraints", []) if not c["ok"]]
    n = len(integ.get("constraints", []))
    out.append(f"\nConstraints re-checked: {n}, violated: {len(bad)}" +
               "".join(f"\n- {c['db']}.{c['table']} {c['constraint']}: {c['problem']}" for c in bad))
    for i in integ.get("invariants", []):
        out.append(f"- invariant {i['name']}: {'ok' if i['ok'] else i['problem']}")
    for lv in integ.get("lost_values", []):
        out.append(f"- lost values: {lv['db']}.{lv['table']}.{lv['column']}: {lv['how']} in {lv['rows_changed']} "
                   f"row(s) e.g. {', '.join(lv['sample_keys'])}")
    return out


def write(rep: dict[str, Any], path: Path) -> tuple[Path, Path]:
    """Write ``<path>`` (JSON, secrets scrubbed) and the readable ``<path>.md`` beside it."""
    path = Path(path)
    data = json.loads(scrub(json.dumps(rep, default=str)))
    atomic_write_json(path, data, mode=0o600)
    md = path.with_suffix(".md")
    md.write_text(render(data))
    return path, md
