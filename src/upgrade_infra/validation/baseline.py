"""Baselines: the metrics of a good validation run, to compare later runs against.

Recorded with ``validate ENV --record-baseline`` into ``<state>/baselines/<env>.json`` (or a file).
Each check contributes the ``metrics`` it reports in its details (performance: p50/p95/p99 ms,
throughput, error rate; http: latency_ms). A staging run compares with production's baseline
with ``--baseline production``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upgrade_infra.core.errors import BadInput
from upgrade_infra.core.state import atomic_write_json, read_json
from upgrade_infra.stack.manifest import check_name

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment
    from upgrade_infra.core.state import StateDir
    from upgrade_infra.validation.engine import ValidationReport

FORMAT = 1


@dataclass
class Baseline:
    env: str
    recorded_at: float
    versions: dict[str, str] = field(default_factory=dict)
    checks: dict[str, dict[str, float]] = field(default_factory=dict)
    source: str = ""  # where it was loaded from

    @property
    def label(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.recorded_at))
        return f"{self.env} ({when})"

    def metrics(self, check: str) -> dict[str, float] | None:
        return self.checks.get(check)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("source")
        return {"format": FORMAT, **d}

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "") -> Baseline:
        if not isinstance(d, dict) or d.get("format") != FORMAT or "checks" not in d:
            raise BadInput(f"{source or 'baseline'} is not a baseline file (format {FORMAT})",
                           fix="record one with `upgrade-infra validate ENV --record-baseline`")
        return cls(d.get("env", "?"), float(d.get("recorded_at", 0)), dict(d.get("versions", {})),
                   {k: dict(v) for k, v in d["checks"].items()}, source)


def from_report(report: ValidationReport) -> Baseline:
    """The metrics of the passed checks of a run."""
    checks: dict[str, dict[str, float]] = {}
    for r in report.results:
        if r.passed:
            checks[r.name] = {"duration_s": r.duration_s, **(r.details.get("metrics") or {})}
    return Baseline(report.env, report.started_at, dict(report.versions), checks)


def state_path(state: StateDir, env: str) -> Path:
    return state.root / "baselines" / f"{check_name('environment', env)}.json"


def save(b: Baseline, path: Path) -> Path:
    atomic_write_json(path, b.to_dict(), mode=0o600)
    return path


def record_baseline(env: Environment, report: ValidationReport, path: Path | None = None) -> Path:
    """Store the run as ``env``'s baseline (or into ``path``). Refuses a failed run."""
    if not report.passed:
        names = ", ".join(r.name for r in report.failures()[:5])
        raise BadInput(f"not recording a baseline from a failing run ({names})",
                       fix="fix the failing checks first; a baseline must describe a healthy environment")
    return save(from_report(report), path or state_path(env.state, env.name))


def load_file(path: Path) -> Baseline:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise BadInput(f"baseline file {path} not found", fix="pass an environment name or an existing file") from None
    except json.JSONDecodeError as e:
        raise BadInput(f"baseline file {path} is not JSON: {e}", fix="record it again with --record-baseline") from None
    return Baseline.from_dict(data, str(path))


def load_env(state: StateDir, env: str) -> Baseline | None:
    data = read_json(state_path(state, env))
    return Baseline.from_dict(data, str(state_path(state, env))) if data else None


def resolve_baseline(env: Environment, spec: Baseline | str | Path | None) -> Baseline | None:
    """A Baseline, a file, an environment name, or None = env's own baseline, else its source's."""
    if isinstance(spec, Baseline):
        return spec
    if spec is None:
        for name in (env.name, env.record.source):
            if name and (b := load_env(env.state, name)):
                return b
        return None
    text = str(spec)
    if isinstance(spec, Path) or text.endswith(".json") or "/" in text or Path(text).is_file():
        return load_file(Path(text))
    b = load_env(env.state, text)
    if b is None:
        raise BadInput(f"no baseline recorded for environment {text!r} (looked in {state_path(env.state, text)})",
                       fix=f"record one with `upgrade-infra validate {text} --record-baseline`")
    return b
