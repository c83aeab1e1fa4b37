"""The state directory: where environments, installs, secrets, restore points and journals live.

Layout (all created 0700 unless noted)::

    <state>/                     0711: the PostgreSQL OS user must traverse to its data dirs
      envs/<env>/env.json        the environment record (kind, ports, versions, processes)
      envs/<env>/pg/{data,run}   the environment's own PostgreSQL cluster (owned by the server user)
      envs/<env>/data/<service>  service data dirs
      envs/<env>/logs/<service>.log
      installs/<service>/<version>/
      secrets/<env>/<name>       0600
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from .errors import StateDirError, UnknownName
from .fsutil import inside, remove_tree
from .manifest import NAME, check_name

TRAVERSE = 0o711


def atomic_write_json(path: Path, data: Any, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError):
        return default


class EnvRecord(BaseModel):
    name: str
    kind: str = "production"  # production | staging
    backend: str = "local"
    port_base: int
    versions: dict[str, str]
    created_at: float
    source: str | None = None  # staging: the environment it was copied from
    ttl_s: float | None = None
    synced_at: float | None = None
    seeded: bool = False
    processes: dict[str, dict] = {}

    def expired(self, now: float | None = None) -> bool:
        return self.ttl_s is not None and (now or time.time()) > self.created_at + self.ttl_s


class StateDir:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def ensure(self) -> StateDir:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            os.chmod(self.root, TRAVERSE)
            for sub in ("envs",):
                (self.root / sub).mkdir(exist_ok=True)
                os.chmod(self.root / sub, TRAVERSE)
            probe = self.root / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as e:
            raise _not_writable(self.root, e) from None
        return self

    def path(self, *parts: str) -> Path:
        """``<state>/<parts...>``, checked (symlinks resolved) to lie inside the state dir."""
        return self.checked(self.root.joinpath(*parts))

    def checked(self, p: Path) -> Path:
        """``p`` itself, once :func:`fsutil.inside` found it (symlinks resolved) inside the state dir."""
        inside(self.root, p, "use")
        return p

    def env_dir(self, env: str) -> Path:
        return self.path("envs", check_name("environment", env))

    def env_record_path(self, env: str) -> Path:
        return self.env_dir(env) / "env.json"

    def load_record(self, env: str) -> EnvRecord | None:
        data = read_json(self.env_record_path(env))
        return EnvRecord.model_validate(data) if data else None

    def require_record(self, env: str) -> EnvRecord:
        rec = self.load_record(env)
        if rec is None:
            raise UnknownName(f"environment {env!r} does not exist in {self.root}",
                              fix=f"create it with `upgrade-infra env up {env}` or `stage create`")
        return rec

    def save_record(self, rec: EnvRecord) -> None:
        d = self.env_dir(rec.name)
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, TRAVERSE)
        atomic_write_json(self.env_record_path(rec.name), rec.model_dump())

    def env_names(self) -> list[str]:
        base = self.root / "envs"
        return sorted(p.name for p in base.iterdir()
                      if re.fullmatch(NAME[1:-1], p.name) and (p / "env.json").exists()) if base.exists() else []

    def installs_dir(self, service: str, version: str) -> Path:
        return self.path("installs", check_name("service", service), check_name("version", version))

    def secrets_dir(self, env: str) -> Path:
        return self.path("secrets", check_name("environment", env))

    def remove(self, path: Path, *, ignore_errors: bool = False) -> None:
        """Delete ``path`` (a tree, a file or a link) if it lies inside the state dir; refuse otherwise."""
        remove_tree(self.root, path, ignore_errors=ignore_errors)

    def private_dir(self, *parts: str) -> Path:
        d = self.path(*parts)
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(d, 0o700)
        return d


def _not_writable(root: Path, e: OSError) -> StateDirError:
    return StateDirError(f"state dir {root} is not writable: {e.strerror}",
                         fix="pass --state-dir to a writable directory, or fix its permissions")


def default_state_dir(stack_path: Path) -> Path:
    return Path(stack_path).resolve().parent / ".upgrade-infra"
