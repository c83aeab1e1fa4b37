"""``exec ENV SERVICE -- CMD…`` (a command with a service's settings) and ``db ENV [DB]`` (connect)."""

from __future__ import annotations

import shlex

import typer

from upgrade_infra.backends import access
from upgrade_infra.cli.app import app, console, emit, session

EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}


@app.command("exec", context_settings=EXTRA)
def exec_(env_name: str = typer.Argument(..., metavar="ENV"),
          service: str = typer.Argument(..., metavar="SERVICE"),
          command: list[str] = typer.Argument(None, metavar="-- COMMAND [ARGS]..."),
          version: str = typer.Option(None, "--version", help="another declared release (installed first)")) -> None:
    """Run a command with a service's settings: its env (secrets included), cwd and installed release,
    like `docker compose exec`. The app's own CLI: `upgrade-infra exec production automations -- app export`.
    Exits with the command's exit code."""
    code = access.exec_in(session().env(env_name), service, list(command or []), version=version)
    raise typer.Exit(code)


@app.command("db", context_settings=EXTRA)
def db(env_name: str = typer.Argument(..., metavar="ENV"),
       database: str = typer.Argument(None, metavar="[DB]", help="default: the first database of the manifest"),
       shell_env: bool = typer.Option(False, "--env", help="print PG* variables to eval (PGPASSFILE, no password)"),
       open_psql: bool = typer.Option(False, "--psql", help="open psql (arguments after -- go to psql)"),
       psql_args: list[str] = typer.Argument(None, metavar="[-- PSQL ARGS]...")) -> None:
    """A connection string for an environment's database (no password: libpq reads it from the 0600
    pgpass file named by PGPASSFILE), its PG* variables with --env, or psql itself with --psql."""
    env = session().env(env_name)
    if open_psql:
        raise typer.Exit(access.psql(env, database, list(psql_args or [])))
    c = access.connection(env, database)
    if shell_env:
        emit(c, lambda r: [print(f"export {k}={shlex.quote(v)}") for k, v in r["libpq_env"].items()])
        return
    emit(c, lambda r: console.print(f"{r['url']}\n[dim]password: PGPASSFILE={r['passfile']} "
                                     f"(or: eval \"$(upgrade-infra db {env_name} {r['database']} --env)\")[/dim]",
                                     highlight=False, soft_wrap=True))
