"""The append-only operations journal: every step is recorded before it starts and after it ends.

One JSON line per record in ``<state>/journal/<env>.jsonl`` (0600), written with O_APPEND and
fsynced before the step runs, so after a crash (kill -9, power loss) the journal says exactly which
step was under way. A torn last line (power loss mid-write) is skipped on reading.

Record types: ``op-start`` (kind, who, command, versions from/to), ``step-begin`` (with what the
step's inverse needs), ``step-end`` (status, duration, result), ``undo-begin``/``undo-end``,
``note``, ``op-end`` (outcome). :func:`history` folds them into one summary per operation.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from upgrade_infra.core import redact
from upgrade_infra.core.errors import BadInput
from upgrade_infra.core.names import check_name
from upgrade_infra.core.state import StateDir

OUTCOMES = ("succeeded", "failed", "rolled-back", "recovered", "abandoned")


def new_op_id() -> str:
    return "op-" + secrets.token_hex(4)


@dataclass
class StepSummary:
    name: str
    status: str  # running | ok | failed | undone | interrupted
    started_at: float
    duration_s: float | None = None
    error: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)


@dataclass
class OpSummary:
    op: str
    env: str
    kind: str
    started_at: float
    command: str = ""
    user: str = ""
    pid: int | None = None
    parent: str | None = None
    from_versions: dict[str, str] = field(default_factory=dict)
    to_versions: dict[str, str] = field(default_factory=dict)
    restore_point: str | None = None
    outcome: str | None = None  # None: never finished (the process died)
    ended_at: float | None = None
    error: str | None = None
    steps: list[StepSummary] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    @property
    def duration_s(self) -> float | None:
        return round(self.ended_at - self.started_at, 3) if self.ended_at else None

    def step(self, name: str) -> StepSummary | None:
        return next((s for s in reversed(self.steps) if s.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["duration_s"] = self.duration_s
        return d


class Journal:
    def __init__(self, state: StateDir, env: str) -> None:
        self.env = env
        self.state = state
        self.path = journal_dir(state) / f"{check_name('environment', env)}.jsonl"

    def _secret_values(self) -> set[str]:
        return self.state.stored_secret_values()

    def append(self, type_: str, op: str, **fields: Any) -> dict[str, Any]:
        """Append one record (fsynced). Every string in it is scrubbed of known secret values first:
        a service that prints a secret while failing puts it into the error text of its step."""
        rec = {"type": type_, "op": op, "env": self.env, "at": time.time(), **fields}
        rec = redact.scrub_obj(json.loads(json.dumps(rec, default=str)), self._secret_values())
        line = (json.dumps(rec, default=str, sort_keys=True) + "\n").encode()
        new = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:
            _fsync_dir(self.path.parent)
        return rec

    def start(self, op: str, kind: str, *, command: str = "", parent: str | None = None,
              **fields: Any) -> dict[str, Any]:
        return self.append("op-start", op, kind=kind, command=command, parent=parent, pid=os.getpid(),
                           user=user_name(), host=socket.gethostname(), **fields)

    def records(self) -> list[dict[str, Any]]:
        try:
            raw = self.path.read_text()
        except FileNotFoundError:
            return []
        out = []
        for line in raw.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a torn last line after a crash
        return out

    def operations(self) -> list[OpSummary]:
        return fold(self.records())

    def incomplete(self) -> OpSummary | None:
        """The latest operation that never recorded its end (its process died), if any."""
        ops = [o for o in self.operations() if not o.finished]
        return ops[-1] if ops else None

    def get(self, op: str) -> OpSummary | None:
        return next((o for o in self.operations() if o.op == op), None)


def fold(records: list[dict[str, Any]]) -> list[OpSummary]:
    ops: dict[str, OpSummary] = {}
    for r in records:
        t, op = r.get("type"), r.get("op")
        if t == "op-start":
            ops[op] = OpSummary(op=op, env=r["env"], kind=r.get("kind", "?"), started_at=r["at"],
                                command=r.get("command", ""), user=r.get("user", ""), pid=r.get("pid"),
                                parent=r.get("parent"), from_versions=r.get("from_versions") or {},
                                to_versions=r.get("to_versions") or {}, restore_point=r.get("restore_point"),
                                data=r.get("data") or {})
            continue
        o = ops.get(op)
        if o is None:
            continue
        if t == "step-begin":
            o.steps.append(StepSummary(r["step"], "running", r["at"], data=r.get("data") or {}))
        elif t in ("step-end", "undo-end"):
            s = o.step(r["step"])
            if s:
                s.status = r.get("status", "ok") if t == "step-end" else "undone"
                s.duration_s = r.get("duration_s")
                s.error = r.get("error")
                s.result = r.get("result") or {}
        elif t == "note":
            o.restore_point = r.get("restore_point") or o.restore_point
            o.data.update(r.get("data") or {})
        elif t == "op-end":
            o.outcome, o.ended_at, o.error = r.get("outcome"), r["at"], r.get("error")
            if r.get("passed") is False and o.outcome == "succeeded":
                o.outcome = "failed"  # a rehearsal whose verdict failed (journals written before 0.x said "succeeded")
    for o in ops.values():
        if not o.finished:
            for s in o.steps:
                if s.status == "running":
                    s.status = "interrupted"
    return sorted(ops.values(), key=lambda o: o.started_at)


def journal_dir(state: StateDir) -> Path:
    return state.root / "journal"


def history(state: StateDir, env: str | None = None, limit: int | None = None) -> list[OpSummary]:
    """Operations of one environment (or all), oldest first."""
    d = journal_dir(state)
    names = [env] if env else sorted(p.stem for p in d.glob("*.jsonl") if _valid(p.stem)) if d.exists() else []
    ops: list[OpSummary] = []
    for n in names:
        ops.extend(Journal(state, n).operations())
    ops.sort(key=lambda o: o.started_at)
    ops = ops[-limit:] if limit else ops
    return [_scrubbed(o, values) for o in ops] if (values := _history_secrets(state)) or redact.known() else ops


def _history_secrets(state: StateDir) -> set[str]:
    return state.stored_secret_values()


def _scrubbed(o: OpSummary, values: set[str]) -> OpSummary:
    """A summary with every string scrubbed (journals written before scrubbing existed, values learnt since)."""
    d = redact.scrub_obj(asdict(o), values)
    d["steps"] = [StepSummary(**s) for s in d["steps"]]
    return OpSummary(**d)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def user_name() -> str:
    if os.environ.get("SUDO_USER"):
        return os.environ["SUDO_USER"]
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return os.environ.get("USER") or str(os.geteuid())


def _valid(env: str) -> bool:
    try:
        check_name("environment", env)
        return True
    except BadInput:
        return False
