"""Port blocks of environments, shared by the backends that publish on the host's loopback
(``local``: services and PostgreSQL listen there; ``compose``: published ports): the block is kept in
the environment's ``backend_state`` as ``port_base``."""

from __future__ import annotations

from typing import Any

from upgrade_infra.core.state import StateDir
from upgrade_infra.stack.crosschecks import block_size
from upgrade_infra.stack.manifest import Manifest
from upgrade_infra.stack.ports import allocate_block, env_ports, holder_of


def taken_bases(m: Manifest, state: StateDir) -> list[int]:
    """Port bases already used: the manifest's environments and every recorded environment's."""
    taken = [e.port_base for e in m.environments.values()]
    for n in state.env_names():
        rec = state.load_record(n)
        if rec is not None and rec.backend_state.get("port_base") is not None:
            taken.append(int(rec.backend_state["port_base"]))
    return taken


def new_port_base(manifest: Manifest, state: StateDir, name: str, requested: dict[str, Any] | None = None) -> int:
    """The port block of a new environment: the one asked for, the manifest's for its environments,
    else the first free block of ``staging.port_range`` (no block of another environment, no port a
    process holds)."""
    requested = requested or {}
    if requested.get("port_base"):
        return int(requested["port_base"])
    if name in manifest.environments:
        return manifest.environments[name].port_base
    taken = taken_bases(manifest, state)
    while True:
        base = allocate_block(manifest, taken)
        if all(holder_of(p) is None for p in range(base, base + block_size(manifest))):
            return base
        taken.append(base)  # a foreign process holds a port of this block: try the next one


class PortBlock:
    """``port_base`` and ``ports`` of an environment from its ``backend_state`` (a record made without
    one gets the manifest's block for its environments)."""

    backend_state: dict[str, Any]
    manifest: Manifest
    name: str

    @property
    def port_base(self) -> int:
        base = self.backend_state.get("port_base")
        if base is None:
            base = self.backend_state["port_base"] = self.manifest.environments[self.name].port_base
        return int(base)

    @property
    def ports(self) -> dict[str, int]:
        return env_ports(self.manifest, self.port_base)
