"""A private copy of a stack on free ports: what tests, benchmarks and tools run against, so that
nothing they start collides with the stack's own environments or with each other.

``private_copy(dest, source)`` writes ``dest/stack.yaml``: the source manifest with every
environment moved to its own free port block and ``staging.port_range`` right after them (ports
from :func:`upgrade_infra.stack.ports.free_block`, which honours ``UPGRADE_INFRA_TEST_PORTS``), and
every other file of the stack's folder linked in.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from upgrade_infra.stack.ports import free_block

STAGING_SPAN = 60  # ports given to staging.port_range (a few staging envs of the reference stack)


def private_copy(dest: Path, source: Path, edit: Callable[[Any], None] | None = None, *,
                 staging_span: int = STAGING_SPAN) -> Path:
    """A copy of the manifest ``source`` in ``dest`` on free port blocks (``edit`` applied to its
    YAML document last); the files beside it linked in. Returns the new manifest's path."""
    yaml = YAML()
    data = yaml.load(Path(source).read_text())
    n = len(data["environments"])
    base = free_block(10 * n + staging_span)
    for i, env in enumerate(data["environments"].values()):
        env["port_base"] = base + 10 * i
    data["staging"]["port_range"] = [base + 10 * n, base + 10 * n + staging_span - 1]
    if edit:
        edit(data)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for entry in Path(source).parent.iterdir():
        if entry.name != Path(source).name and not entry.name.startswith("."):
            (dest / entry.name).symlink_to(entry)
    out = dest / "stack.yaml"
    with open(out, "w") as f:
        yaml.dump(data, f)
    return out
