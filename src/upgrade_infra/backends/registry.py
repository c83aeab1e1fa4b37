"""Backends by the name written in the manifest (``environments.<env>.backend``)."""

from __future__ import annotations

import time
from collections.abc import Callable

from upgrade_infra.backends.interface import Environment, ReadinessCheck
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
    return EnvRecord(name=name, kind="production", backend=spec.backend, versions=dict(spec.versions),
                     created_at=time.time(),
                     backend_state=backend(spec.backend, name).new_backend_state(m, state, name, kind="production"))


def backend(name: str, env: str | None = None) -> type[Environment]:
    """The backend class registered as ``name``."""
    from upgrade_infra.backends.local import environment as local  # noqa: F401 - registers the embedded default backend

    if name == "compose" and name not in BACKENDS:
        from upgrade_infra.backends.compose import environment as compose  # noqa: F401 - registers itself

    if name not in BACKENDS:
        raise UnknownName(f"environment {env!r} uses unknown backend {name!r}" if env else f"unknown backend {name!r}",
                          fix=f"use one of: {', '.join(BACKENDS)}")
    return BACKENDS[name]


def open_environment(m: Manifest, state: StateDir, name: str, record: EnvRecord | None = None, *,
                     readiness_check: ReadinessCheck | None = None) -> Environment:
    """The environment ``name`` through its backend. ``readiness_check`` runs a service's readiness
    ``check:`` (validation lives above backends: the session injects it)."""
    rec = record or record_for(m, state, name)
    return backend(rec.backend, name)(m, state, rec, readiness_check=readiness_check)
