"""Which release last migrated each database, and the downgrade guard built on it.

``<env dir>/migrated.json`` (0600): ``{db: {"service", "version", "op", "at"}}``, written when an
upgrade succeeds (its owner's new version migrated the database on start or by its command) and when a
rollback brings a restore point's databases back (then the restore point's versions). An environment
without the file (made before this existed) counts its owners' current versions.

An upgrade to a release *older* than the one that last migrated a database starts that release on a
newer schema: the guard refuses it (exit 2, pointing to ``rollback``) unless the service declares a
``downgrade`` command (the upgrade runs it) or ``--allow-downgrade`` is given.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from upgrade_infra.core.errors import BadInput
from upgrade_infra.core.state import atomic_write_json, read_json

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment
    from upgrade_infra.stack.manifest import Manifest

FILE = "migrated.json"
_NUMERIC = re.compile(r"^v?(\d+(?:\.\d+)*)$")


def load(env: Environment) -> dict[str, dict[str, Any]]:
    """db -> {service, version, …}: recorded, else the owner's current version."""
    recorded = read_json(env.dir / FILE) or {}
    out = {}
    for db, spec in env.manifest.postgres.databases.items():
        cur = env.record.versions.get(spec.owner)
        out[db] = recorded.get(db) or {"service": spec.owner, "version": cur, "recorded": False}
    return out


def record(env: Environment, versions: dict[str, str], op: str | None = None) -> dict[str, dict[str, Any]]:
    """The databases owned by the services in ``versions`` were (last) migrated by those versions."""
    data = read_json(env.dir / FILE) or {}
    for db, spec in env.manifest.postgres.databases.items():
        if spec.owner in versions:
            data[db] = {"service": spec.owner, "version": versions[spec.owner], "op": op, "at": time.time()}
    env.dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(env.dir / FILE, data, mode=0o600)
    return data


def is_older(m: Manifest, service: str, version: str, than: str) -> bool:
    """``version`` is an older release than ``than``: by number when both are plain numbers
    (1.10.0 > 1.9.2), else by their order under ``services.<service>.versions``."""
    a, b = _NUMERIC.match(version), _NUMERIC.match(than)
    if a and b:
        return _key(a.group(1)) < _key(b.group(1))
    order = list(m.service(service).versions)
    if version in order and than in order:
        return order.index(version) < order.index(than)
    return False


def _key(v: str) -> tuple[int, ...]:
    parts = [int(x) for x in v.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def downgrades(env: Environment, targets: dict[str, str]) -> list[dict[str, str]]:
    """The databases the targets would run on a schema a newer release migrated."""
    out = []
    last = load(env)
    for db, spec in env.manifest.postgres.databases.items():
        svc = spec.owner
        rec = last.get(db) or {}
        if svc in targets and rec.get("version") and rec.get("service") == svc \
                and is_older(env.manifest, svc, targets[svc], rec["version"]):
            out.append({"db": db, "service": svc, "to": targets[svc], "migrated_by": rec["version"]})
    return out


def guard(env: Environment, targets: dict[str, str], allow: bool = False) -> list[dict[str, str]]:
    """Refuse a downgrade onto a newer schema (nothing changed, exit 2); returns the downgrades
    allowed (by a declared ``downgrade`` command, or ``allow``)."""
    found = downgrades(env, targets)
    blocked = [d for d in found if not allow and not env.manifest.service(d["service"]).downgrade]
    if blocked:
        d = blocked[0]
        raise BadInput(
            f"refusing to downgrade {d['service']} to {d['to']} in {env.name}: database {d['db']} was last "
            f"migrated by {d['service']} {d['migrated_by']}, and {d['to']} would start on that newer schema",
            fix=f"go back with `upgrade-infra rollback {env.name}` (the restore point taken before the upgrade; "
                f"`upgrade-infra snapshot list {env.name}`), declare services.{d['service']}.downgrade, or pass "
                f"--allow-downgrade if {d['to']} runs on that schema", downgrades=blocked)
    return found
