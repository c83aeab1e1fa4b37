"""The Typer app, global options and output helpers shared by the command modules."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from ..redact import scrub
from ..session import Session, default_stack_path

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


_state = CliState(Session())


def state_of() -> CliState:
    return _state


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


def session() -> Session:
    return _state.session


def emit(data: Any, human: Callable[[Any], None] | None = None) -> None:
    """Print ``data`` as JSON (with --json) or through ``human`` for people. Secrets are scrubbed."""
    if _state.json or human is None:
        print(scrub(json.dumps(data, indent=2, default=str)))
    else:
        human(data)


@contextmanager
def progress(message: str):
    """A spinner for anything that takes more than a second (silent with --json)."""
    if _state.json:
        yield
        return
    with console_err.status(message):
        yield


def sub(name: str, help: str) -> typer.Typer:
    t = typer.Typer(no_args_is_help=True, help=help)
    app.add_typer(t, name=name)
    return t
