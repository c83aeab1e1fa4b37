"""``import compose FILE``: a stack.yaml written from an existing Docker Compose file."""

from __future__ import annotations

from pathlib import Path

import typer

from upgrade_infra.cli.app import console, emit, esc, sub
from upgrade_infra.core.errors import BadInput
from upgrade_infra.stack.compose_import import import_compose, write_stack

import_app = sub("import", "Write a stack.yaml from what a stack is already deployed with.")


@import_app.command("compose")
def compose(file: Path = typer.Argument(..., metavar="FILE", help="the docker-compose.yml (or compose.yaml)"),
            output: Path = typer.Option(Path("stack.yaml"), "-o", "--output", help="the stack.yaml to write"),
            project: str = typer.Option(None, "--project",
                                        help="the Compose project name (default: name:, COMPOSE_PROJECT_NAME or "
                                             "the file's directory, as Compose does)"),
            force: bool = typer.Option(False, "--force", help="replace an existing output file")) -> None:
    """Read FILE (and the .env beside it) and write a stack.yaml for it: the PostgreSQL service and its
    databases, every other service with its image tag as version, volumes, healthchecks, ports and env;
    secrets as references to variables, never values. Prints what it could not infer, with the Compose
    line and the stack.yaml key to edit."""
    if output.exists() and not force:  # refused before anything is read
        raise BadInput(f"{output} exists: not overwritten", fix="pass --force to replace it, or -o another path")
    if file.is_file():  # Compose's own validation first: its message, with the file and line
        from upgrade_infra.backends.compose.driver import ComposeNotFound, check_compose_file

        try:
            check_compose_file(file)
        except ComposeNotFound:
            pass  # Compose not installed: the import's own YAML parser still names a syntax error's line
    result = import_compose(file, project=project, stack_dir=output.resolve().parent)
    written = write_stack(result, output, force=force)
    data = {"written": str(written), **result.to_dict()}

    def human(r: dict) -> None:
        pg = r["postgres"]
        major = f"PostgreSQL {pg['major']}" if pg["major"] else "PostgreSQL (major unknown)"
        console.print(f"wrote {esc(r['written'])}: {major} in service {esc(pg['service'])}, "
                      f"{len(r['databases'])} database(s) ({esc(', '.join(r['databases']))}), "
                      f"{len(r['services'])} service(s) ({esc(', '.join(r['services']))}), "
                      f"{len(r['secrets'])} secret(s) read from the environment", highlight=False, soft_wrap=True)
        items = r["not_inferred"]
        if items:
            console.print(f"not inferred ({len(items)}): edit {esc(r['written'])} (lines marked TODO(import)) "
                          "or the Compose file", highlight=False, soft_wrap=True)
            for n in items:
                console.print(f"- {esc(n['text'])}", highlight=False, soft_wrap=True)
        else:
            console.print("everything inferred", highlight=False)
        console.print("a valid manifest, compose: section included (`env up production` runs it as a Compose "
                      "project)", style="dim", highlight=False, soft_wrap=True)

    emit(data, human)

