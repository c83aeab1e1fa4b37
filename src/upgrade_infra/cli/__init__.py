"""The ``upgrade-infra`` command line: a thin parser over library functions.

Global options go before the command: ``upgrade-infra --stack S --state-dir D --json status``.
Exit codes: 0 ok, 1 a check failed, 2 bad input or usage, 3 an operation failed.
"""

from __future__ import annotations

import sys

import typer

from ..errors import EXIT_BAD_INPUT, EXIT_OPERATION_FAILED, UpgradeInfraError
from ..state import private_umask
from .app import app, console_err, state_of

# sub-command modules register themselves on import
from . import env_cmds, runbook_cmds, site_cmds  # noqa: E402,F401  isort: skip
from . import validate_cmds  # noqa: E402,F401  isort: skip
from . import snapshot_cmds, upgrade_cmds  # noqa: E402,F401  isort: skip
from . import stage_cmds  # noqa: E402,F401  isort: skip
from . import migrate_cmds  # noqa: E402,F401  isort: skip


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; usage errors exit 2 (Typer's standalone mode), library errors map to their exit code."""
    private_umask()  # state dir, reports, logs: nothing the tool writes is for other users
    try:
        app(args=argv, standalone_mode=True)
        return 0
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_BAD_INPUT)
    except UpgradeInfraError as e:
        _report(e.one_line(), e.to_dict(), argv)
        return e.exit_code
    except KeyboardInterrupt:
        console_err.print("interrupted")
        return EXIT_OPERATION_FAILED


def _report(line: str, data: dict, argv: list[str] | None) -> None:
    import json

    if state_of().json:
        print(json.dumps(data, default=str))
    console_err.print(f"[red]error:[/red] {line}", highlight=False, soft_wrap=True)


def entry() -> None:
    sys.exit(main())


__all__ = ["app", "main", "entry", "typer"]
