"""Finishing what a crash interrupted: ``upgrade-infra resume ENV``, and a rollback that finds an
interrupted operation first.

Every operation kind of the journal has a recovery handler in the registry
(:data:`upgrade_infra.core.steps.RECOVERY`, loaded through entry points): ``upgrade`` and
``rollback`` (:mod:`.upgrade`, :mod:`.rollback`), ``snapshot`` (:mod:`upgrade_infra.restore.ops`),
``migrate-test`` (:mod:`upgrade_infra.migration.recovery`). This module dispatches on the kind and
imports none of them, so both the upgrade and the rollback use it without importing each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from upgrade_infra.core.journal import Journal
from upgrade_infra.core.lock import READ_ONLY, env_lock
from upgrade_infra.core.steps import RECOVERY, end_op, resume_ctx
from upgrade_infra.operations.results import Recovered, RecoveryResult

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment


def recover(env: Environment, *, command: str = "resume", prefer: str = "resume") -> RecoveryResult:
    """Finish every operation a crash interrupted, newest first; ``prefer='rollback'`` also rolls
    back an upgrade whose steps had all completed."""
    done: list[Recovered] = []
    with env_lock(env.state, env.name, command):
        journal = Journal(env.state, env.name)
        first = journal.incomplete()
        kind = first.kind if first else None
        # a rollback killed between its data-dir renames starts it itself; a half-built environment
        # (env restore) is removed, whatever state its database is in; an interrupted export or
        # import only read the environment (which may not even exist here)
        if (kind != "env-restore" and not (first and first.data.get(READ_ONLY))
                and (kind != "rollback" or env.database_exists())):
            env.start_database()
        while (inc := journal.incomplete()) is not None:
            handler = RECOVERY.get(inc.kind, None)
            if handler is not None:
                extra = dict(handler.finish(env, inc, command, prefer=prefer))
                done.append(Recovered(inc.op, inc.kind, extra.pop("action", None), result=extra.pop("result", None),
                                      undone=extra.pop("undone", None), extra=extra))
            else:  # nobody registered how to finish it: close it so the environment is usable again
                end_op(resume_ctx(env, inc), "abandoned", error=f"interrupted; no recovery for {inc.kind!r}")
                done.append(Recovered(inc.op, inc.kind, "abandoned: check the environment"))
    return RecoveryResult(env.name, done, dict(env.record.versions))
