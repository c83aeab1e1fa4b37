"""What every command needs: the manifest, the state dir, and environments opened through the registry."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from upgrade_infra.backends import Environment, open_environment
from upgrade_infra.backends.health import ProbeResult
from upgrade_infra.core.state import EnvRecord, StateDir, default_state_dir
from upgrade_infra.stack.manifest import Manifest, load_manifest


def readiness_check(env: Environment, name: str) -> ProbeResult:
    """A service's readiness ``check:``, run by the validation engine (injected into every environment
    opened here: backends sit below validation)."""
    from upgrade_infra.validation.engine import readiness_check as run

    return run(env, name)


def default_stack_path() -> Path:
    return Path(os.environ.get("UPGRADE_INFRA_STACK", "stack.yaml"))


@dataclass
class Session:
    stack: Path = field(default_factory=default_stack_path)
    state_dir: Path | None = None

    @cached_property
    def manifest(self) -> Manifest:
        m = load_manifest(self.stack)
        for w in m.warnings:  # e.g. port blocks in the kernel's ephemeral range
            print(f"warning: {w}", file=sys.stderr)
        return m

    @cached_property
    def state(self) -> StateDir:
        root = self.state_dir or Path(os.environ.get("UPGRADE_INFRA_STATE_DIR") or default_state_dir(self.stack))
        return StateDir(root).ensure()

    def env(self, name: str) -> Environment:
        return open_environment(self.manifest, self.state, name, readiness_check=readiness_check)

    def open(self, name: str, record: EnvRecord) -> Environment:
        """An environment from a record not saved yet (a staging env being created, a restore)."""
        return open_environment(self.manifest, self.state, name, record, readiness_check=readiness_check)

    def environments(self) -> list[Environment]:
        names = sorted(set(self.manifest.environments) | set(self.state.env_names()))
        return [self.env(n) for n in names]


def session(stack: str | Path | None = None, state_dir: str | Path | None = None) -> Session:
    """Entry point for runbooks and scripts: ``s = session('examples/pa-stack/stack.yaml')``."""
    return Session(Path(stack) if stack else default_stack_path(), Path(state_dir) if state_dir else None)


def stop_everything(s: Session) -> list[str]:
    """Bring down every environment recorded in the state dir (best effort, for teardown)."""
    stopped = []
    for name in s.state.env_names():
        try:
            s.env(name).down(ignore_open=True)  # teardown: stop it even when an operation is half-done
            stopped.append(name)
        except Exception:  # noqa: BLE001 - keep stopping the others
            continue
    return stopped
