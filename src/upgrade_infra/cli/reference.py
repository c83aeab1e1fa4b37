"""The CLI reference page, generated from the CLI itself (so it cannot drift from the code)."""

from __future__ import annotations

import typer

EXIT_CODES = [(0, "ok"), (1, "a check failed (validation, unhealthy status, failed runbook or gate)"),
              (2, "bad input or usage: manifest errors, unknown names, port taken, missing binaries"),
              (3, "an operation failed: a command, PostgreSQL, a service that never became ready, a lock held")]


def _params(cmd) -> list[str]:
    rows = []
    for p in cmd.params:
        if p.param_type_name == "argument":
            rows.append(f"| `{(p.name or '').upper()}` | argument | {'required' if p.required else 'optional'} |")
        elif p.param_type_name == "option" and not getattr(p, "hidden", False):
            names = ", ".join(f"`{o}`" for o in p.opts + p.secondary_opts)
            default = "" if p.default in (None, False, (), []) or callable(p.default) else f" (default `{p.default}`)"
            rows.append(f"| {names} | option | {(p.help or '').replace('|', '/')}{default} |")
    return rows


def _walk(cmd, path: list[str], out: list[str]) -> None:
    """Typer vendors its own click, so commands are recognised by shape, not by class."""
    if hasattr(cmd, "commands"):
        if path:
            out += [f"## `{' '.join(path)}`", "", (cmd.help or "").strip(), ""]
        for name in sorted(cmd.commands):
            _walk(cmd.commands[name], path + [name], out)
        return
    out += [f"### `upgrade-infra {' '.join(path)}`", "", (cmd.help or "").strip(), ""]
    rows = _params(cmd)
    if rows:
        out += ["| name | kind | meaning |", "| --- | --- | --- |", *rows, ""]


def cli_reference(app: typer.Typer) -> str:
    root = typer.main.get_command(app)
    out = ["# CLI reference", "", "## What it is", "",
           "Every command of `upgrade-infra`, generated from the CLI itself at site build time.", "",
           "## How to run it", "",
           "Global options go before the command: `upgrade-infra --stack PATH --state-dir DIR --json COMMAND`.",
           "", "| name | kind | meaning |", "| --- | --- | --- |", *_params(root), "",
           "### Exit codes", "", "| code | meaning |", "| --- | --- |",
           *[f"| {c} | {m} |" for c, m in EXIT_CODES], ""]
    _walk(root, [], out)
    out += ["## Troubleshooting", "",
            "Errors print one line: what went wrong and `(fix: …)`. With `--json` the error is also printed "
            "as a JSON object with the same fields on stdout.", ""]
    return "\n".join(out)
