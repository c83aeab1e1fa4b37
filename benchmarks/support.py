"""What the benchmarks share with the tests, without importing the tests: a private copy of the
reference stack on free ports (the library's :func:`upgrade_infra.stack.private_copy.private_copy`)
and the one-service "tiny" manifest the check-kind tests and the validation benchmark run against.
"""

from __future__ import annotations

from pathlib import Path

from ruamel.yaml import YAML

from upgrade_infra.stack.private_copy import private_copy

REPO = Path(__file__).resolve().parents[1]
PA_STACK = REPO / "examples" / "pa-stack" / "stack.yaml"


def write_stack(dest: Path, source: Path = PA_STACK, edit=None) -> Path:
    """A private copy of the reference stack (or ``source``) in ``dest``, on free port blocks."""
    return private_copy(dest, source, edit)


def tiny_manifest(base: int, checks: list[dict], extra_services: dict | None = None,
                  secrets: dict | None = None) -> dict:
    """One service ``web`` on port_base+1, never started by upgrade-infra (the caller's server answers there)."""
    services = {"web": {"port": 1, "command": "true", "health": {"http": "/healthz"}, "versions": {"1": {}}}}
    services.update(extra_services or {})
    return {"version": 1, "name": "tiny",
            "postgres": {"databases": {"app": {"owner": "web"}}},
            "services": services,
            "environments": {"production": {"port_base": base, "versions": {s: "1" for s in services}}},
            "staging": {"port_range": [base + 10, base + 49]},
            "secrets": secrets or {}, "checks": checks}


def write_tiny(dest: Path, checks: list[dict], base: int = 41000, **kw) -> Path:
    """The manifest only (the default ports are never opened: pass ``base`` to run checks)."""
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / "stack.yaml"
    with open(path, "w") as f:
        YAML().dump(tiny_manifest(base, checks, **kw), f)
    return path
