"""Restore points: capture an environment's databases, data dirs, versions and manifest hash.

Strategies (``clone``, ``dump``, ``fs``, ``cow``; ``auto`` picks ``cow`` or ``clone``) live in a registry keyed by their YAML name
(:mod:`.registry`). This module is the library API the CLI, upgrades and rollbacks call::

    rp = snapshots.create(env, "clone", label="before 1.1.0")   # an operation: locked, journaled
    snapshots.list_points(env.state, "production")
    snapshots.verify(env, rp)                                   # [] when intact
    snapshots.prune(env)                                        # retention from policies.retention
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from upgrade_infra.backends.interface import MissingCapability
from upgrade_infra.core import fsutil
from upgrade_infra.core.errors import RestorePointError, UnknownName
from upgrade_infra.core.state import StateDir
from upgrade_infra.restore import datadirs
from upgrade_infra.restore import volumes as engine_volumes
from upgrade_infra.restore.meta import (
    RestorePoint,
    all_ids,
    incomplete_ids,
    load,
    make_dir,
    remove_dir,
    rp_dir,
    save,
    verify_files,
)
from upgrade_infra.restore.registry import STRATEGIES, Strategy, get_strategy, register_strategy, strategy_for

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment

# (and create, prune: see __getattr__ at the end)
__all__ = ["STRATEGIES", "RestorePoint", "Strategy", "capture", "delete", "get", "get_strategy",
           "list_points", "make_spare", "register_strategy", "require_valid", "strategy_choice",
           "strategy_status", "verify"]


def strategy_choice(env: Environment, name: str | None = None) -> tuple[str, str]:
    """(strategy, why): the one asked for (``--strategy``, else ``policies.snapshot_strategy``), with
    ``auto`` resolved: ``cow`` where the state dir's filesystem makes reflinks, else ``clone``."""
    from upgrade_infra.restore.cow import choose

    chosen, why = choose(env, name or env.manifest.policies.snapshot_strategy)
    strategy_for(env, chosen)  # unknown, or needing what the backend lacks: refused here (exit 2)
    return chosen, why


def strategy_name(env: Environment, name: str | None = None) -> str:
    return strategy_choice(env, name)[0]


def strategy_status(env: Environment) -> dict:
    """For ``status``: the policy, what it picks now and why, and what the last restore point used."""
    try:
        chosen, why = strategy_choice(env)
    except (UnknownName, MissingCapability, OSError) as e:
        chosen, why = None, str(e)
    pts = list_points(env.state, env.name)
    last = pts[-1] if pts else None
    return {"policy": env.manifest.policies.snapshot_strategy, "strategy": chosen, "why": why,
            "last": ({"id": last.id, "strategy": last.strategy, "why": last.strategy_why} if last else None)}


def capture(env: Environment, strategy: str | None = None, *, label: str | None = None,
            op: str | None = None, rp_id: str | None = None, spare: bool = False,
            why: str | None = None) -> RestorePoint:
    """Capture a restore point now (services already stopped when the strategy needs it).

    On any failure the partial restore point is removed and the error re-raised: nothing else
    was modified. A disk-space check runs first (``DiskFull`` names what is needed and free).
    """
    from upgrade_infra.restore.meta import new_id

    name, chosen_why = strategy_choice(env, strategy)
    st = get_strategy(name)
    need = (st.estimate_bytes(env) + datadirs.bytes_of(env)) * (2 if spare else 1)
    fsutil.require_space(env.state.root, need, f"a {st.name} restore point of {env.name}")
    t0 = time.monotonic()
    rp = RestorePoint(id=rp_id or new_id(), env=env.name, strategy=st.name, strategy_why=why or chosen_why,
                      created_at=time.time(), label=label,
                      op=op, versions=dict(env.record.versions), manifest_sha256=env.manifest.sha256,
                      pg_major=env.database.major)
    image_ids = getattr(env, "image_ids", None)
    if image_ids is not None:
        rp.images = image_ids()
    d = make_dir(env.state, rp.id)
    try:
        w0 = time.monotonic()
        with st.quiesced(env):
            st.capture(env, rp, d)
            datadirs.capture(env, rp, d)
            vol_bytes = engine_volumes.capture(env, rp)
        # clone/cow: the window the databases were closed (services keep running around it);
        # cow measures its own pause (the checkpoint and flush before it keep the databases open)
        rp.downtime_s = st.capture_downtime(round(time.monotonic() - w0, 3))
        for rel in rp.data_dirs.values():
            from upgrade_infra.restore.meta import checksum_tree

            rp.files.update(checksum_tree(d, rel))
        rp.bytes += datadirs.bytes_of(env) + vol_bytes
        rp.capture_s = round(time.monotonic() - t0, 3)
        save(env.state, rp)
    except BaseException:
        _drop_partial(env, rp.id, st)
        raise
    return rp


def _drop_partial(env: Environment, rp_id: str, *strategies: Strategy) -> None:
    for st in strategies:
        st.drop_partial(env, rp_id)
    engine_volumes.drop(env, rp_id)
    remove_dir(rp_dir(env.state, rp_id))


def make_spare(env: Environment, rp: RestorePoint) -> bool:
    d = rp_dir(env.state, rp.id)
    made = get_strategy(rp.strategy).make_spare(env, rp, d)
    datadirs.make_spare(rp, d)
    return made


def has_spare(env: Environment, rp: RestorePoint) -> bool:
    return get_strategy(rp.strategy).has_spare(env, rp, rp_dir(env.state, rp.id))


def get(state: StateDir, rp_id: str) -> RestorePoint:
    return load(state, rp_id)


def list_points(state: StateDir, env: str | None = None) -> list[RestorePoint]:
    out = []
    for i in all_ids(state):
        try:
            rp = load(state, i)
        except (RestorePointError, UnknownName):
            continue
        if env is None or rp.env == env:
            out.append(rp)
    return sorted(out, key=lambda r: r.created_at)


def verify(env: Environment, rp: RestorePoint) -> list[str]:
    """Problems with a restore point (missing databases, missing or changed files); [] when intact."""
    d = rp_dir(env.state, rp.id)
    st = get_strategy(rp.strategy)
    return (st.verify(env, rp, d) + datadirs.verify(rp, d) + engine_volumes.verify(env, rp)
            + verify_files(d, rp.files, "data/"))


def require_valid(env: Environment, rp_id: str) -> RestorePoint:
    rp = get(env.state, rp_id)
    if rp.env != env.name:
        raise RestorePointError(f"restore point {rp_id} belongs to environment {rp.env!r}, not {env.name!r}",
                                fix=f"build a new environment from it: `upgrade-infra env restore NAME --from {rp_id}`")
    strategy_for(env, rp.strategy)
    problems = verify(env, rp)
    if problems:
        raise RestorePointError(f"restore point {rp_id} is damaged: {'; '.join(problems[:5])}",
                                fix="pick another (`upgrade-infra snapshot list`) or import an exported copy",
                                problems=problems)
    return rp


def delete(env: Environment, rp_id: str) -> None:
    """Remove a restore point (complete or half-made), including its databases in the cluster."""
    try:
        rp = get(env.state, rp_id)
    except (RestorePointError, UnknownName):
        _drop_partial(env, rp_id, *STRATEGIES.values())  # whichever strategy began it: each cleans up
        return
    get_strategy(rp.strategy).drop(env, rp, rp_dir(env.state, rp.id))
    engine_volumes.drop(env, rp.id)
    remove_dir(rp_dir(env.state, rp.id))


def incomplete(state: StateDir) -> list[str]:
    return incomplete_ids(state)


def __getattr__(name: str):  # create and prune: operations built on the functions above
    """``points.create``/``points.prune`` live in :mod:`.ops`, which imports this module: looked up on
    first use, so either module can be imported first (a bottom-of-module import broke ``import ops``)."""
    if name in ("create", "prune"):
        from upgrade_infra.restore import ops

        return getattr(ops, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
