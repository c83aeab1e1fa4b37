"""Backends by the name written in the manifest (``environments.<env>.backend``)."""

from __future__ import annotations

import time
from collections.abc import Callable

from upgrade_infra.backends.interface import Environment
from upgrade_infra.core.errors import UnknownName
from upgrade_infra.core.state import EnvRecord, StateDir
from upgrade_infra.stack.manifest import Manifest

BACKENDS: dict[str, type[Environment]] = {}


def register_backend(name: str) -> Callable[[type[Environment]], type[Environment]]:
    def deco(cls: type[Environment]) -> type[Environment]:
        BACKENDS[name] = cls
        cls.backend_name = name
        return cls

    return deco


def record_for(m: Manifest, state: StateDir, name: str) -> EnvRecord:
    """The stored record, or a new one from the manifest's environment block."""
    rec = state.load_record(name)
    if rec is not None:
        return rec
    if name not in m.environments:
        known = sorted(set(m.environments) | set(state.env_names()))
        raise UnknownName(f"unknown environment {name!r}",
                          fix=f"use one of: {', '.join(known)}, or create a staging env with `stage create`")
    spec = m.environments[name]
    return EnvRecord(name=name, kind="production", backend=spec.backend, port_base=spec.port_base,
                     versions=dict(spec.versions), created_at=time.time())


def open_environment(m: Manifest, state: StateDir, name: str, record: EnvRecord | None = None) -> Environment:
    rec = record or record_for(m, state, name)
    from upgrade_infra.backends.local import environment as local  # noqa: F401 - registers the embedded default backend

    if rec.backend not in BACKENDS:
        raise UnknownName(f"environment {name!r} uses unknown backend {rec.backend!r}",
                          fix=f"use one of: {', '.join(BACKENDS)}")
    return BACKENDS[rec.backend](m, state, rec)
