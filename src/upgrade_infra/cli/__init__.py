"""The ``upgrade-infra`` command line: a thin parser over library functions.

Global options go before the command: ``upgrade-infra --stack S --state-dir D --json status``.
Exit codes: 0 ok, 1 a check failed, 2 bad input or usage, 3 an operation failed.
With ``--json``, stdout is exactly one JSON document, on success and on failure (usage errors included).
"""

from __future__ import annotations

import json
import logging
import sys
import traceback

import typer
from rich.markup import escape

from upgrade_infra.cli.app import app, console_err, reset_state, state_of
from upgrade_infra.core.errors import EXIT_BAD_INPUT, EXIT_OPERATION_FAILED, UpgradeInfraError
from upgrade_infra.core.redact import scrub
from upgrade_infra.core.state import private_umask

# sub-command modules register themselves on import
from upgrade_infra.cli import env_cmds, runbook_cmds, site_cmds  # noqa: E402,F401  isort: skip
from upgrade_infra.cli import validate_cmds  # noqa: E402,F401  isort: skip
from upgrade_infra.cli import snapshot_cmds, upgrade_cmds  # noqa: E402,F401  isort: skip
from upgrade_infra.cli import stage_cmds  # noqa: E402,F401  isort: skip
from upgrade_infra.cli import migrate_cmds  # noqa: E402,F401  isort: skip
from upgrade_infra.cli import quarantine_cmds  # noqa: E402,F401  isort: skip
from upgrade_infra.cli import access_cmds  # noqa: E402,F401  isort: skip
from upgrade_infra.cli import import_cmds  # noqa: E402,F401  isort: skip


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; usage errors exit 2, library errors map to their exit code, anything else exits 3."""
    args = list(sys.argv[1:] if argv is None else argv)
    reset_state()
    _show_library_warnings()
    private_umask()  # state dir, reports, logs: nothing the tool writes is for other users
    try:
        rv = app(args=args, standalone_mode=False)  # click returns the exit code of typer.Exit / --help
        return rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
    except UpgradeInfraError as e:
        _report(e.one_line(), e.to_dict(), args)
        return e.exit_code
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        _report("interrupted", {"error": "KeyboardInterrupt", "message": "interrupted", "fix": None,
                                "exit_code": EXIT_OPERATION_FAILED}, args)
        return EXIT_OPERATION_FAILED
    except Exception as e:  # noqa: BLE001 - usage errors, aborts, and bugs: each still one JSON document
        return _unexpected(e, args)


class _StderrWarnings(logging.Handler):
    """``warning: …`` on whatever ``sys.stderr`` is when the warning is logged (in-process runs swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(f"warning: {scrub(record.getMessage())}\n")
        except Exception:  # noqa: BLE001 - logging must never break the command
            self.handleError(record)


def _show_library_warnings() -> None:
    """The library's warnings (logger ``upgrade_infra``) go to stderr."""
    lib = logging.getLogger("upgrade_infra")
    if not any(isinstance(h, _StderrWarnings) for h in lib.handlers):
        lib.addHandler(_StderrWarnings(logging.WARNING))


def _unexpected(e: Exception, args: list[str]) -> int:
    if _is_usage_error(e):  # unknown option, missing argument, bad value (click's; typer may vendor click)
        if _json_wanted(args) and not state_of().emitted:
            print(json.dumps({"error": type(e).__name__, "message": e.format_message(),
                              "fix": f"see `{_command_of(e)} --help`",
                              "exit_code": e.exit_code}), flush=True)
            state_of().emitted = True
        e.show()  # click's usage line and message (or the help), on stderr
        return e.exit_code
    if type(e).__name__ == "Abort":
        _report("aborted", {"error": "Aborted", "message": "aborted", "fix": None, "exit_code": 1}, args)
        return 1
    traceback.print_exc(file=sys.stderr)  # a bug: keep the traceback
    msg = f"{type(e).__name__}: {e}"
    _report(f"internal error: {msg}", {"error": type(e).__name__, "message": msg, "exit_code": EXIT_OPERATION_FAILED,
                                       "fix": "please report this with the traceback above"}, args)
    return EXIT_OPERATION_FAILED


def _is_usage_error(e: Exception) -> bool:
    """A click ``ClickException`` (usage error): it can show itself and carries its exit code."""
    return callable(getattr(e, "show", None)) and callable(getattr(e, "format_message", None)) \
        and isinstance(getattr(e, "exit_code", None), int)


def _command_of(e: Exception) -> str:
    """``upgrade-infra env up`` for a usage error raised while parsing ``env up``'s arguments."""
    path = getattr(getattr(e, "ctx", None), "command_path", "") or ""
    return " ".join(["upgrade-infra", *path.split()[1:]])


def _json_wanted(args: list[str]) -> bool:
    # usage errors can happen before the global callback ran (state_of().json still unset)
    return state_of().json or "--json" in args[: args.index("--") if "--" in args else len(args)]


def _report(line: str, data: dict, args: list[str]) -> None:
    """The error: one JSON document on stdout with --json (unless a result is already there), one line on stderr.
    The line is escaped: text from services and users (``[/etc/pa.conf]``) is never read as Rich markup."""
    if _json_wanted(args) and not state_of().emitted:
        print(scrub(json.dumps(data, default=str)), flush=True)
        state_of().emitted = True
    console_err.print(f"[red]error:[/red] {escape(scrub(line))}", highlight=False, soft_wrap=True)


def entry() -> None:
    sys.exit(main())


__all__ = ["app", "main", "entry", "typer"]
