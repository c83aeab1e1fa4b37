"""Command/env templates: ``{version}``, ``{port}``, ``{db.assistant.url}``, ``{secrets.key}``…

Pure functions: placeholder discovery (for manifest validation), rendering, and argv building
(the template is split with shell rules *before* rendering, so a value with spaces stays one argument).
"""

from __future__ import annotations

import shlex
import string
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

from upgrade_infra.core.errors import BadInput

# root placeholder -> allowed attribute names (None: a leaf; "*": any declared name of that kind)
SERVICE_FIELDS = {"python", "version", "port", "host", "data_dir", "install_dir", "state_dir", "stack_dir",
                  "env", "log_dir", "to_version", "from_version", "db", "services", "secrets"}
SEED_FIELDS = {"python", "stack_dir", "state_dir", "env", "size_mb", "db", "services", "secrets", "data_dirs"}
DB_ATTRS = {"url", "name", "user", "password", "host", "port"}
SERVICE_ATTRS = {"url", "port", "host"}


def placeholders(template: str) -> list[str]:
    """Field names used in a template, e.g. ['python', 'db.assistant.url']."""
    try:
        return [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as e:
        raise BadInput(f"bad template {template!r}: {e}", fix="balance the braces; write {{ for a literal {") from None


def check_placeholder(field: str, allowed_roots: set[str], names: Mapping[str, set[str]]) -> str | None:
    """Return a problem description, or None when ``field`` can be rendered.

    ``names`` maps 'db', 'services', 'secrets', 'data_dirs' to the declared names.
    """
    parts = field.replace("[", ".").replace("]", "").split(".")
    root = parts[0]
    if root not in allowed_roots:
        return f"unknown placeholder {{{field}}}; allowed here: {', '.join(sorted(allowed_roots))}"
    if root in ("db", "services", "secrets", "data_dirs"):
        if len(parts) < 2 or parts[1] not in names.get(root, set()):
            declared = ", ".join(sorted(names.get(root, set()))) or "none declared"
            return f"{{{field}}} names no declared {root} entry ({declared})"
        attrs = {"db": DB_ATTRS, "services": SERVICE_ATTRS}.get(root)
        if attrs is not None and (len(parts) != 3 or parts[2] not in attrs):
            return f"{{{field}}}: write {{{root}.{parts[1]}.X}} with X one of {', '.join(sorted(attrs))}"
        if attrs is None and len(parts) != 2:
            return f"{{{field}}}: write {{{root}.{parts[1]}}}"
    elif len(parts) > 1:
        return f"{{{field}}}: {root} has no attributes"
    return None


def secret_placeholder(field: str) -> bool:
    """True for placeholders whose value is a secret: ``{secrets.X}``, ``{db.X.password}``, ``{db.X.url}``
    (the URL carries the password)."""
    parts = field.replace("[", ".").replace("]", "").split(".")
    return parts[0] == "secrets" or (parts[0] == "db" and len(parts) == 3 and parts[2] in ("password", "url"))


def argv_secret_problem(template: str, env_hint: str) -> str | None:
    """A problem description when a command template puts a secret on the command line (visible in
    ``ps`` to every user of the host), else None. ``env_hint`` names where to declare the variable."""
    try:
        fields = placeholders(template)
    except BadInput:
        return None  # reported by the placeholder check
    bad = [f for f in fields if secret_placeholder(f)]
    if not bad:
        return None
    return (f"{{{bad[0]}}} puts a secret on the command line, where `ps` shows it to every user of the host"
            f" (fix: pass it by environment: declare it under {env_hint} and read the variable in the program)")


def namespace(obj: Any) -> Any:
    """Turn nested dicts into attribute-accessible namespaces for str.format."""
    if isinstance(obj, Mapping):
        return SimpleNamespace(**{str(k): namespace(v) for k, v in obj.items()})
    return obj


def render(template: str, context: Mapping[str, Any]) -> str:
    ns = {k: namespace(v) for k, v in context.items()}
    try:
        return template.format_map(ns)
    except (KeyError, AttributeError) as e:
        raise BadInput(f"template {template!r} uses {e} which is not available here",
                       fix="see the placeholder list in docs/reference/manifest.md") from None


def build_argv(template: str, context: Mapping[str, Any]) -> list[str]:
    try:
        tokens = shlex.split(template)
    except ValueError as e:
        raise BadInput(f"command {template!r} cannot be split: {e}", fix="balance the quotes") from None
    return [render(t, context) for t in tokens]


def render_env(env: Mapping[str, str], context: Mapping[str, Any]) -> dict[str, str]:
    """Render an environment; values of secret-named variables (``*_TOKEN``, ``*PASSWORD*``…) are
    registered for redaction, so they never reach the journal, logs or reports the tool writes."""
    from upgrade_infra.core import redact

    out = {k: render(v, context) for k, v in env.items()}
    redact.register_env(out)
    return out
