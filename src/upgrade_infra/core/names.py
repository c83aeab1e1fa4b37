"""The names that end up in a path, a database name or a command line, and their one check.

Defined here, in the bottom layer, because the state dir, the journal and the lock turn names into
paths; :mod:`upgrade_infra.stack.manifest` uses the same patterns for the manifest's fields.
"""

from __future__ import annotations

import re

from upgrade_infra.core.errors import BadInput

# One pattern per kind of name that ends up in a path, a database name or a command line. None can
# contain '/' or be '.'/'..', so a name is always exactly one path component.
NAME = r"^[a-z][a-z0-9_-]{0,39}$"  # stack, environment, service, database and secret names
VERSION = r"^[A-Za-z0-9][A-Za-z0-9._+~-]{0,63}$"  # service versions (installs/<service>/<version>/)
RESTORE_POINT_ID = r"^rp-[a-z0-9][a-z0-9_-]{0,39}$"  # restore points (restore-points/<id>/)
OP_ID = r"^op-[a-z0-9][a-z0-9_-]{0,39}$"  # operations of the journal (quarantine/<op>/)

NAME_KINDS: dict[str, tuple[str, str]] = {
    "environment": (NAME, "use lowercase letters, digits, '-' or '_', starting with a letter (at most 40)"),
    "service": (NAME, "use lowercase letters, digits, '-' or '_', starting with a letter (at most 40)"),
    "version": (VERSION, "use letters, digits, '.', '_', '+', '~' or '-', starting with a letter or digit "
                         "(at most 64), e.g. 1.4.2"),
    "restore point": (RESTORE_POINT_ID, "use an id from `upgrade-infra snapshot list`, e.g. rp-1a2b3c4d"),
    "operation": (OP_ID, "use an id from `upgrade-infra history`, e.g. op-1a2b3c4d"),
}


def check_name(kind: str, value: str, where: str | None = None) -> str:
    """``value`` if it is a valid ``kind`` name (see NAME_KINDS), else BadInput (exit 2) naming ``where``
    (the CLI argument, or the manifest field) and the fix. Called wherever a name becomes a path."""
    pattern, fix = NAME_KINDS[kind]
    if not isinstance(value, str) or not re.fullmatch(pattern[1:-1], value):
        label = {"restore point": " id", "operation": " id", "version": ""}.get(kind, " name")
        raise BadInput(f"{where + ': ' if where else ''}{value!r} is not a valid {kind}{label}", fix=fix,
                       argument=where, value=str(value))
    return value
