"""Secrets: values from the environment, a file, or generated once and kept 0600 in the state dir.

Values never go into the manifest, reports or notebooks: every resolved value is registered with
:mod:`upgrade_infra.core.redact`, which scrubs text before it is written anywhere.
"""

from __future__ import annotations

import os
import secrets as _secrets
from pathlib import Path

from upgrade_infra.core import redact
from upgrade_infra.core.errors import BadInput
from upgrade_infra.core.state import StateDir
from upgrade_infra.stack.manifest import Manifest, SecretSpec


def _generated(state: StateDir, env: str, name: str) -> str:
    d = state.private_dir("secrets", env)
    p = d / name
    if not p.exists():
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(_secrets.token_urlsafe(24))
    return p.read_text().strip()


def _from_sources(m: Manifest, spec: SecretSpec, name: str, env_var: str | None) -> str | None:
    if env_var and os.environ.get(env_var):
        return os.environ[env_var]
    if spec.file:
        p = Path(spec.file) if Path(spec.file).is_absolute() else m.stack_dir / spec.file
        try:
            return p.read_text().strip()
        except OSError as e:
            raise BadInput(f"secret {name!r}: cannot read {p}: {e.strerror}",
                           fix=f"create the file or set ${spec.env or name.upper()}") from None
    return None


def resolve(m: Manifest, state: StateDir, env: str, *, kind: str = "production",
            source_env: str | None = None) -> dict[str, str]:
    """All secrets of the manifest for environment ``env``.

    A staging environment gets its own values (``$VAR_<ENV>`` or generated), except for secrets
    declared ``staging: same``, which take the source environment's value.
    """
    out: dict[str, str] = {}
    for name, spec in m.secrets.items():
        if kind == "staging" and spec.staging == "same" and source_env:
            out[name] = resolve(m, state, source_env)[name]
            continue
        env_var = spec.env if kind != "staging" else (f"{spec.env}_{env.upper()}" if spec.env else None)
        value = _from_sources(m, spec, name, env_var) if kind != "staging" or env_var else None
        if value is None:
            if not spec.generate and kind != "staging":
                raise BadInput(f"secret {name!r} has no value", fix=f"set ${spec.env}" if spec.env else
                               "set env:, file: or generate: true in the manifest")
            value = _generated(state, env, name)
        out[name] = value
    for v in out.values():
        redact.register(v)
    return out


def db_password(state: StateDir, env: str, db: str) -> str:
    value = _generated(state, env, f"_db_{db}")
    redact.register(value)
    return value


def known_values(m: Manifest, state: StateDir) -> set[str]:
    """Every secret value this stack can have: env vars, files, and all generated values in the state dir."""
    values: set[str] = set()
    for spec in m.secrets.values():
        for var, val in os.environ.items():
            if spec.env and (var == spec.env or var.startswith(spec.env + "_")):
                values.add(val)
        if spec.file:
            p = Path(spec.file) if Path(spec.file).is_absolute() else m.stack_dir / spec.file
            if p.is_file():
                values.add(p.read_text().strip())
    values |= stored_values(state)
    for v in values:
        redact.register(v)
    return values


def stored_values(state: StateDir) -> set[str]:
    """The generated values kept in the state dir (database passwords, generated secrets), registered."""
    return state.stored_secret_values()
