"""``pg-volume``: the restore point of a PostgreSQL major upgrade. Nothing is copied: the restore point
records the server the environment ran before the upgrade (its volume, image, image ID and major), which
the upgrade leaves untouched beside the new one (backends with the ``ServerVolumes`` capability: compose).

A rollback switches the environment back to that server (the volume and image as they were) and puts the
upgraded server's volume in the quarantine; the quarantined server is read by starting it in a side
container (sequence advance and the per-table report). Once a rollback made the old volume live again, the
restore point is used up (``verify`` says so): a later upgrade takes a new one. Pruning the restore point
deletes the old volume (never the live one).

It is taken only by ``upgrade-infra upgrade ENV --postgres MAJOR`` (:mod:`upgrade_infra.operations.pgmajor`);
``snapshot create --strategy pg-volume`` is refused (it would record the live volume).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upgrade_infra.backends.interface import ServerVolumes
from upgrade_infra.core.errors import BadInput, OperationFailed, RestorePointError
from upgrade_infra.core.journal import Journal
from upgrade_infra.restore.meta import RestorePoint
from upgrade_infra.restore.registry import Strategy, register_strategy

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment

OP_KIND = "pg-major"  # the journal kind of the operation that takes these restore points


def volumes(env: Environment) -> ServerVolumes:
    return env.capability(ServerVolumes)


def drop_quarantined(env: Environment, server: dict[str, Any]) -> bool:
    """Delete a quarantined server's volume (``quarantine prune``/``delete``); never the live one."""
    try:
        return volumes(env).remove_volume(server["volume"])
    except OperationFailed:
        return False


def server_of(rp: RestorePoint) -> dict[str, Any]:
    if not rp.databases:
        raise RestorePointError(f"restore point {rp.id} records no server", fix="pick another restore point")
    return dict(next(iter(rp.databases.values()))["server"])


@register_strategy("pg-volume")
class PgVolumeStrategy(Strategy):
    requires = frozenset({ServerVolumes})
    alternative = "clone"
    #: only the operation of this journal kind takes it (``snapshot create`` is refused, exit 2)
    taken_by = OP_KIND
    needs_stopped_services = False  # the major upgrade stops them itself; `snapshot create` refuses first
    reference_kept = False
    portable = False
    swaps_cluster = True

    def estimate_bytes(self, env: Environment) -> int:
        return 0  # the old volume stays where it is

    def capture(self, env: Environment, rp: RestorePoint, rp_dir: Path) -> None:
        op = Journal(env.state, env.name).get(rp.op) if rp.op else None
        if op is None or op.kind != OP_KIND:
            raise BadInput("a pg-volume restore point is taken by a PostgreSQL major upgrade, not on its own",
                           fix=f"`upgrade-infra upgrade {env.name} --postgres MAJOR`; for a restore point now, "
                               "use --strategy clone", strategy=self.name, alternative=self.alternative)
        server = volumes(env).current()
        rp.databases = {db: {"server": server} for db in env.manifest.postgres.databases}

    def stage(self, env: Environment, rp: RestorePoint, rp_dir: Path, op: str) -> dict[str, Any]:
        server = server_of(rp)
        problems = volumes(env).problems(server)
        if problems:
            raise RestorePointError(f"restore point {rp.id}: {'; '.join(problems)}",
                                    fix="pick another restore point (`upgrade-infra snapshot list`)")
        return {"server": server, "path": "volume"}

    def swap(self, env: Environment, staged: dict[str, Any], op: str, qdir: Path) -> dict[str, Any]:
        """Switch the environment to the restore point's server; the one it ran goes to the quarantine."""
        import time

        from upgrade_infra.restore import quarantine

        t0 = time.monotonic()
        replaced = volumes(env).switch(staged["server"])
        if replaced["volume"] == staged["server"]["volume"]:  # nothing was switched away: no quarantine
            return {"quarantine": {}, "pgdata": None, "seconds": round(time.monotonic() - t0, 4)}
        meta = quarantine.load(env.state, op) or {}
        quarantine.record(env, op, meta.get("restore_point", ""), server=replaced)
        return {"quarantine": {db: f"(volume {replaced['volume']})" for db in env.manifest.postgres.databases},
                "pgdata": replaced["volume"], "server": replaced, "seconds": round(time.monotonic() - t0, 4)}

    @contextmanager
    def quarantined(self, env: Environment, quarantine: dict[str, Any]) -> Iterator[dict[str, str]]:
        from upgrade_infra.restore import quarantine as qlib

        if not quarantine.get("pgdata") or not quarantine.get("databases"):
            yield {}
            return
        server = next((m["server"] for m in reversed(qlib.list_all(env.state, env.name))
                       if (m.get("server") or {}).get("volume") == quarantine["pgdata"]), None)
        if server is None:
            raise RestorePointError(f"no quarantine of {env.name} records the server of volume {quarantine['pgdata']}")
        with volumes(env).side_server(server) as conninfo:
            yield {db: conninfo(db) for db in quarantine["databases"]}

    def verify(self, env: Environment, rp: RestorePoint, rp_dir: Path) -> list[str]:
        server = server_of(rp)
        problems = volumes(env).problems(server)
        if volumes(env).current()["volume"] == server["volume"]:
            problems.append(f"its volume {server['volume']} is the live one (a rollback used this restore point, "
                            "or the upgrade did not switch): take a new restore point")
        return problems

    def drop(self, env: Environment, rp: RestorePoint, rp_dir: Path) -> None:
        """Pruned: the old server's volume goes too (never the live one)."""
        try:
            volumes(env).remove_volume(server_of(rp)["volume"])
        except OperationFailed:
            pass  # it is live again: kept
