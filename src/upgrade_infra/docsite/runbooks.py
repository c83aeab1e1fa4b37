"""Executing runbooks (Jupyter notebooks in ``runbooks/``) with Papermill.

A run executes into a private temporary file, then the executed notebook is post-processed
before anything is written to ``reports/``: secrets scrubbed from cells, outputs and Papermill
metadata; large outputs capped (the full text goes to a file beside the notebook); a header cell
says when and against what it ran, and a failed run says so at the top. Budgets per runbook
(notebook metadata ``upgrade_infra.budget_s`` or the ``budget_s`` parameter) and per step (cell
metadata ``upgrade_infra.budget_s``) are reported and enforced.
"""

from __future__ import annotations

import html
import json
import keyword
import os
import platform
import re
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from upgrade_infra import __version__
from upgrade_infra.core.errors import BadInput, UnknownName
from upgrade_infra.core.redact import scrub
from upgrade_infra.core.state import atomic_write_json
from upgrade_infra.stack.pairs import split_pair

RESULT_ENV = "UPGRADE_INFRA_RESULT"
OUTPUT_CAP = 8000  # characters of one output kept in the notebook
NAME_RE = re.compile(r"^(\d+)-(.+)\.ipynb$")


@dataclass
class Step:
    index: int
    name: str
    duration_s: float
    budget_s: float | None
    status: str  # ok | failed | over-budget | not-run


@dataclass
class RunResult:
    name: str
    status: str  # passed | failed
    duration_s: float
    notebook: str
    result_json: str
    error: str | None = None
    budget_s: float | None = None
    steps: list[Step] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    papermill_overhead_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def runbook_dir(root: Path | None = None) -> Path:
    return (root or Path.cwd()) / "runbooks"


SOURCE_DIR = Path(__file__).resolve().parents[3] / "runbooks"  # a source checkout (editable install)


def packaged_dir() -> Path | None:
    """The runbooks shipped with the package: the source checkout's, else ``<prefix>/share/upgrade-infra``."""
    for d in (SOURCE_DIR, installed_dir()):
        if list_runbooks(d):
            return d
    return None


def installed_dir() -> Path:
    """Where a (non-editable) install puts the shipped runbooks (``[tool.setuptools.data-files]``)."""
    import sysconfig

    return Path(sysconfig.get_path("data")) / "share" / "upgrade-infra" / "runbooks"


def default_dir(start: Path | None = None) -> Path:
    """Where ``runbook list/run`` look without ``--dir``: ``./runbooks`` when it holds runbooks (a
    project's own), else the runbooks shipped with the package, so they work from any directory."""
    local = runbook_dir(start)
    if list_runbooks(local):
        return local
    return packaged_dir() or local


def list_runbooks(directory: Path) -> list[tuple[str, Path]]:
    """(name, path) in run order: files are named ``NN-name.ipynb``."""
    found = []
    if not directory.is_dir():
        return found
    for p in sorted(directory.glob("*.ipynb")):
        m = NAME_RE.match(p.name)
        if m:
            found.append((m.group(2), p))
    return found


def require_stack(path: Path, stack: Path, params: dict[str, Any]) -> None:
    """A shipped runbook run from an installed package has no reference stack to fall back on: it needs yours."""
    if stack.exists() or params.get("stack") or path.resolve().parent != installed_dir().resolve():
        return
    raise BadInput(f"runbook {path.name} needs a stack manifest: {stack} not found",
                   fix="run it beside your stack.yaml, or pass --stack PATH (before `runbook`)")


def find_runbook(directory: Path, name: str) -> Path:
    for n, p in list_runbooks(directory):
        if name in (n, p.stem, p.name):
            return p
    raise UnknownName(f"no runbook {name!r} in {directory}",
                      fix=f"use one of: {', '.join(n for n, _ in list_runbooks(directory))}")


def parse_params(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        k, v = split_pair(pair, message=f"parameter {pair!r} is not key=value", fix="write -p key=value",
                          strict=False)
        if not k.isidentifier() or keyword.iskeyword(k):
            raise BadInput(f"-p {pair!r}: {k!r} is not a parameter name", fix="write -p name=value, e.g. -p seed_mb=8",
                           parameter=k)
        try:
            out[k] = json.loads(v)
        except ValueError:
            out[k] = v
    for k in out:
        if re.search(r"pass|secret|token|key", k, re.I):
            raise BadInput(f"parameter {k!r} looks like a secret; runbook parameters are written into reports",
                           fix="pass secrets through the environment or a file named in the manifest")
    return out


def declared_params(path: Path) -> dict[str, str | None]:
    """The parameters cell of a runbook: name -> type (its annotation, ``seed_mb: float = None``, else the
    type of its default, ``name = "x"`` -> str; None when neither says). Read with Papermill, nothing run."""
    import ast

    from papermill import inspect_notebook

    out: dict[str, str | None] = {}
    for name, info in inspect_notebook(str(path)).items():
        declared = info.get("inferred_type_name")
        if declared and declared != "None":
            out[name] = declared
            continue
        try:
            default = ast.literal_eval(info.get("default") or "None")
        except (ValueError, SyntaxError):
            default = None
        out[name] = None if default is None else "number" if type(default) in (int, float) else type(default).__name__
    return out


_EXAMPLES = {"float": "8.5", "int": "3", "number": "8", "bool": "true", "str": "text", "list": '["a","b"]',
             "dict": '{"a":1}'}


def _typed(value: Any, raw: str, kind: str | None) -> Any:
    """``value`` (``raw`` read as JSON) as a ``kind`` parameter; ValueError when it is not one."""
    if value is None or kind is None or kind not in _EXAMPLES:
        return value
    if kind == "str":
        return value if isinstance(value, str) else raw
    if kind == "bool" and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    ok = {"float": (int, float), "number": (int, float), "int": (int,), "bool": (bool,), "list": (list,),
          "dict": (dict,)}[kind]
    if isinstance(value, bool) and kind != "bool" or not isinstance(value, ok):
        raise ValueError(kind)
    return value


def check_params(path: Path, pairs: list[str]) -> dict[str, Any]:
    """``-p name=value`` pairs checked against the runbook's parameters cell before anything runs: an
    empty or unknown name, or a value of the wrong type, is BadInput (exit 2) naming the parameter and its type."""
    params = parse_params(pairs)
    declared = declared_params(path)
    raw = dict(split_pair(pair, message="", fix="", strict=False) for pair in pairs)  # parse_params checked them
    listing = ", ".join(f"{n} ({t or 'any'})" for n, t in declared.items()) or "none"
    out: dict[str, Any] = {}
    for k, v in params.items():
        if k not in declared:
            raise BadInput(f"runbook {path.name} has no parameter {k!r}", fix=f"use one of: {listing}", parameter=k)
        kind = declared[k]
        try:
            out[k] = _typed(v, raw[k], kind)
        except ValueError:
            raise BadInput(f"-p {k}={raw[k]}: {k} is a {kind} parameter and {raw[k]!r} is not a {kind}",
                           fix=f"e.g. -p {k}={_EXAMPLES[kind]}", parameter=k, type=kind) from None
    return out


# -- post-processing (pure functions over notebook nodes) ------------------------------------------
def _cap_outputs(nb: Any, spill_dir: Path) -> None:
    for i, cell in enumerate(nb.cells):
        for j, out in enumerate(cell.get("outputs", [])):
            key = "text" if "text" in out else None
            data = out.get("data", {})
            if key is None and "text/plain" in data:
                text, setter = data["text/plain"], lambda v, d=data: d.__setitem__("text/plain", v)
            elif key:
                text, setter = out[key], lambda v, o=out: o.__setitem__("text", v)
            else:
                continue
            text = "".join(text) if isinstance(text, list) else text
            if len(text) > OUTPUT_CAP:
                spill_dir.mkdir(parents=True, exist_ok=True)
                f = spill_dir / f"cell{i:03d}-out{j}.txt"
                f.write_text(text)
                setter(text[:OUTPUT_CAP] + f"\n… output capped: {len(text)} characters, full text in "
                                           f"{spill_dir.name}/{f.name}\n")


def scrub_notebook(nb: Any) -> Any:
    """Secrets out of every cell source, output and metadata (Papermill keeps parameters there)."""
    return nbformat.reads(scrub(nbformat.writes(nb)), as_version=4)


def _steps(nb: Any) -> list[Step]:
    steps, heading = [], None
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            m = re.search(r"^#+\s*(.+)$", cell.source, re.M)
            heading = m.group(1).strip() if m else heading
            continue
        meta = cell.metadata.get("upgrade_infra", {})
        pm = cell.metadata.get("papermill", {})
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags or "parameters" in tags:
            continue
        dur = pm.get("duration")
        status = {"failed": "failed", "completed": "ok"}.get(pm.get("status"), "not-run")
        budget = meta.get("budget_s")
        if status == "ok" and budget is not None and dur is not None and dur > budget:
            status = "over-budget"
        steps.append(Step(i, meta.get("step") or heading or f"cell {i}", round(dur or 0.0, 3), budget, status))
    return steps


def _register_stack_secrets(params: dict, env: dict[str, str] | None) -> None:
    """The kernel resolved secrets in its own process; learn every value it could have seen."""
    from upgrade_infra.operations.session import session
    from upgrade_infra.stack.secrets import known_values

    env = {**os.environ, **(env or {})}
    stack = params.get("stack") or env.get("UPGRADE_INFRA_STACK")
    if not stack:
        from upgrade_infra.docsite.notebook import REFERENCE_STACK

        stack = str(Path(REFERENCE_STACK.replace("../", "")).resolve())
    try:
        s = session(stack, params.get("state_dir") or env.get("UPGRADE_INFRA_STATE_DIR"))
        known_values(s.manifest, s.state)
    except Exception:  # noqa: BLE001 - pattern-based scrubbing still applies
        pass


def _stack_line(params: dict, env: dict[str, str] | None) -> str:
    stack = params.get("stack") or (env or {}).get("UPGRADE_INFRA_STACK") or os.environ.get("UPGRADE_INFRA_STACK")
    if not stack:
        return "the reference stack (examples/pa-stack/stack.yaml)"
    try:
        from upgrade_infra.stack.manifest import load_manifest

        m = load_manifest(stack)
        return f"stack <code>{html.escape(m.name)}</code> (manifest sha256 <code>{m.sha256[:12]}</code>)"
    except Exception:  # noqa: BLE001 - the header must not fail the run
        return f"stack <code>{html.escape(str(stack))}</code>"


def _header(name: str, params: dict, status: str, error: str | None, started: float,
            against: str) -> Any:
    """An HTML admonition (Material styles it; notebook markdown has no admonition syntax)."""
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started))
    shown = ", ".join(f"<code>{html.escape(f'{k}={v}')}</code>" for k, v in params.items()) or "defaults"
    kind = "success" if status == "passed" else "failure"
    body = (f"<p>Runbook <code>{name}</code> executed by upgrade-infra {__version__} with Papermill against "
            f"{against} on host <code>{html.escape(platform.node())}</code>; parameters: {shown}.</p>")
    if error:
        body += f"<p><strong>Failed:</strong> {html.escape(error)}</p>"
    cell = nbformat.v4.new_markdown_cell(
        f'<div class="admonition {kind}"><p class="admonition-title">Run of {when}: {status.upper()}</p>'
        f"{body}</div>")
    cell.metadata["upgrade_infra"] = {"header": True}
    return cell


def _kernel_manager_class(socket_dir: str) -> type:
    """A kernel on IPC sockets in a private directory: no TCP port, so no ``Kernel is running over TCP
    without encryption`` warning on every run, and nothing else on the machine can talk to it."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class IPCKernelManager(AsyncKernelManager):
        @default("transport")
        def _transport_default(self) -> str:
            return "ipc"

        @default("ip")
        def _ip_default(self) -> str:
            return os.path.join(socket_dir, "kernel")

        async def _async_interrupt_kernel(self) -> None:
            # jupyter_client interrupts (SIGINT) every kernel it shuts down; Papermill only shuts down an
            # idle one, and a SIGINT that lands while ipykernel is between states logs "[IPKernelApp]
            # ERROR | KeyboardInterrupt caught in kernel" on our stderr (seen under load). The shutdown
            # request, then SIGTERM and SIGKILL after shutdown_wait_time, still follow.
            if self.shutting_down:
                return
            await super()._async_interrupt_kernel()

    return IPCKernelManager


def current_step(nb: Any) -> str | None:
    """The step (cell metadata step, else the last heading above) of the cell Papermill runs now."""
    heading = None
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            m = re.search(r"^#+\s*(.+)$", cell.source, re.M)
            heading = m.group(1).strip() if m else heading
            continue
        if cell.metadata.get("papermill", {}).get("status") == "running":
            return cell.metadata.get("upgrade_infra", {}).get("step") or heading or f"cell {i}"
    return None


class _Watcher(threading.Thread):
    """Reads the notebook Papermill saves after every cell and reports the running step."""

    def __init__(self, path: Path, report: Callable[[str], None], every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.path, self.report, self.every, self.done = path, report, every, threading.Event()

    def run(self) -> None:
        last = None
        while not self.done.wait(self.every):
            try:
                step = current_step(nbformat.read(self.path, as_version=4))
            except Exception:  # noqa: BLE001 - a half-written file: try again next tick
                continue
            if step and step != last:
                last = step
                self.report(step)


def execute(path: Path, reports: Path, params: dict[str, Any] | None = None, *,
            budget_s: float | None = None, env: dict[str, str] | None = None,
            progress: Callable[[str], None] | None = None) -> RunResult:
    """Run one runbook. ``progress`` is called with the name of each step as it starts."""
    import papermill as pm

    params = dict(params or {})
    name = NAME_RE.match(path.name).group(2) if NAME_RE.match(path.name) else path.stem
    reports.mkdir(parents=True, exist_ok=True)
    out_nb, out_json = reports / f"{name}.ipynb", reports / f"{name}.json"
    source = nbformat.read(path, as_version=4)
    budget = budget_s or params.get("budget_s") or source.metadata.get("upgrade_infra", {}).get("budget_s")
    error = None
    with tempfile.TemporaryDirectory(prefix="uinfra-run-") as tmp:
        tmp_nb, figures_path = Path(tmp) / path.name, Path(tmp) / "result.json"
        saved = {k: os.environ.get(k) for k in [RESULT_ENV, *(env or {})]}
        os.environ.update({RESULT_ENV: str(figures_path), **(env or {})})
        t0, started = time.monotonic(), time.time()
        watcher = _Watcher(tmp_nb, progress) if progress else None
        if watcher:
            watcher.start()
        try:
            pm.execute_notebook(str(path), str(tmp_nb), parameters=params, cwd=str(path.parent),
                                progress_bar=False, log_output=False, kernel_name="python3",
                                execution_timeout=int(budget * 2) if budget else None,
                                kernel_manager_class=_kernel_manager_class(tmp))
        except Exception as e:  # noqa: BLE001 - a failed run still produces its notebook
            error = scrub(_first_line(e))
        finally:
            if watcher:
                watcher.done.set()
                watcher.join(5)
            for k, v in saved.items():
                os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        duration = time.monotonic() - t0
        nb = nbformat.read(tmp_nb, as_version=4) if tmp_nb.exists() else source
        figures = json.loads(figures_path.read_text()) if figures_path.exists() else {}
    steps = _steps(nb)
    if not error and (unverified := unverified_results(figures)):
        error = f"the runbook's result is not verified: {', '.join(unverified)} is false"
    failed = next((st for st in steps if st.status == "failed"), None)
    if error and failed:  # name the cell, and where its output is
        error = f"step {failed.name!r} (cell {failed.index + 2} of {out_nb.name}, counting from 1): {error}; output in {out_nb}"
    cell_time = sum(s.duration_s for s in steps)
    over = [s for s in steps if s.status == "over-budget"]
    if not error and over:
        error = f"step {over[0].name!r} took {over[0].duration_s:.1f}s, budget {over[0].budget_s}s"
    if not error and budget and duration > budget:
        error = f"runbook took {duration:.1f}s, budget {budget}s"
    status = "failed" if error else "passed"
    nb.cells.insert(0, _header(name, params, status, error, started, _stack_line(params, env)))
    nb.metadata["upgrade_infra"] = {**nb.metadata.get("upgrade_infra", {}), "status": status,
                                    "ran_at": started, "duration_s": round(duration, 3)}
    _register_stack_secrets(params, env)
    nb = scrub_notebook(nb)
    _cap_outputs(nb, reports / f"{name}.outputs")
    nbformat.write(nb, out_nb)
    result = RunResult(name, status, round(duration, 3), str(out_nb), str(out_json), error, budget, steps,
                       figures, round(max(duration - cell_time, 0.0), 3))
    atomic_write_json(out_json, json.loads(scrub(json.dumps(result.to_dict(), default=str))), mode=0o600)
    os.chmod(out_nb, 0o600)
    return result


def unverified_results(figures: Any, path: str = "") -> list[str]:
    """Paths (``rollback.verified``) of every ``verified`` result the run recorded as false."""
    out: list[str] = []
    if isinstance(figures, dict):
        for k, v in figures.items():
            here = f"{path}.{k}" if path else str(k)
            if k == "verified" and v is False:
                out.append(here)
            else:
                out += unverified_results(v, here)
    return out


def _first_line(e: Exception) -> str:
    """Papermill's execution error carries the notebook's exception name and value."""
    ename, evalue = getattr(e, "ename", None), getattr(e, "evalue", None)
    if ename:
        return f"{ename}: {evalue}"[:500]
    lines = str(e).strip().splitlines()
    return (lines[-1] if lines else type(e).__name__)[:500]
