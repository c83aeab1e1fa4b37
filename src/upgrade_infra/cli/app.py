"""The Typer app, global options and output helpers shared by the command modules.

Output rules: with ``--json`` stdout carries exactly one JSON document (the result, or the error when
there is no result); everything else goes to stderr. Text from outside the tool (names, paths, error
and log lines) goes through :func:`esc` before Rich renders it, so ``[/etc/pa.conf]`` prints verbatim.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from upgrade_infra.core.errors import BadInput
from upgrade_infra.core.redact import scrub
from upgrade_infra.core.results import Result
from upgrade_infra.operations.session import Session, default_stack_path
from upgrade_infra.stack.manifest import check_name

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Staging, validation, migration testing and rapid rollback for self-hosted stacks.")
PIPED_WIDTH = 4096  # output to a file or pipe: tables at their natural width, nothing cut at 80 columns


def make_console(stderr: bool = False) -> Console:
    """A terminal gets its own width; anything else (pipe, file, CI log) a wide one: tables keep
    their natural width instead of being cut with an ellipsis at Rich's default of 80 columns."""
    c = Console(stderr=stderr)
    return c if c.is_terminal else Console(stderr=stderr, width=PIPED_WIDTH)


console = make_console()
console_err = make_console(stderr=True)


@dataclass
class CliState:
    session: Session
    json: bool = False
    emitted: bool = False  # a JSON document is on stdout: errors after it add nothing there


_state = CliState(Session())


def state_of() -> CliState:
    return _state


def reset_state() -> None:
    """Before each run (main() may be called many times in one process): no --json, nothing emitted yet."""
    global _state
    _state = CliState(Session())


@app.callback()
def _global(
    stack: Path = typer.Option(None, "--stack", envvar="UPGRADE_INFRA_STACK",
                               help="stack manifest (default ./stack.yaml)"),
    state_dir: Path = typer.Option(None, "--state-dir", envvar="UPGRADE_INFRA_STATE_DIR",
                                   help="state directory (default .upgrade-infra/ beside the stack file)"),
    as_json: bool = typer.Option(False, "--json", help="print a machine-readable JSON result"),
) -> None:
    global _state
    _state = CliState(Session(stack or default_stack_path(), state_dir), as_json)


def checked(kind: str) -> Callable:
    """A Typer callback: the argument must be a valid ``kind`` name (see manifest.NAME_KINDS), else a usage
    error (exit 2) naming the argument and the fix, before anything runs."""

    def callback(ctx: typer.Context, param: Any, value: Any) -> Any:
        if value is None or ctx.resilient_parsing:
            return value
        for v in value if isinstance(value, list | tuple) else [value]:
            try:
                check_name(kind, v)
            except BadInput as e:
                raise typer.BadParameter(f"{e.message} (fix: {e.fix})") from None
        return value

    return callback


ENV_NAME, RP_ID = checked("environment"), checked("restore point")


def esc(value: Any) -> str:
    """``value`` as text Rich prints verbatim (no markup parsed in it)."""
    return escape(str(value))


def session() -> Session:
    return _state.session


def emit(data: Any, human: Callable[[Any], None] | None = None) -> None:
    """Print ``data`` as JSON (with --json) or through ``human`` for people. Secrets are scrubbed.
    A typed result (:class:`~upgrade_infra.core.results.Result`) prints its ``to_dict()``; ``human``
    gets the result itself and reads its attributes."""
    if _state.json or human is None:
        doc = data.to_dict() if isinstance(data, Result) else data
        print(scrub(json.dumps(doc, indent=2, default=str)), flush=True)
        _state.emitted = True
    else:
        human(data)


@contextmanager
def progress(message: str):
    """A spinner for anything that takes more than a second (silent with --json)."""
    if _state.json:
        yield
        return
    with console_err.status(esc(message)):  # messages name paths and envs: never markup
        yield


def sub(name: str, help: str) -> typer.Typer:
    t = typer.Typer(no_args_is_help=True, help=help)
    app.add_typer(t, name=name)
    return t
