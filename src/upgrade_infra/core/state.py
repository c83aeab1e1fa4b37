"""The state directory: where environments, installs, secrets, restore points and journals live.

Layout (the tool works under a umask of 077: directories 0700, files 0600 unless noted)::

    <state>/                     0711: the PostgreSQL OS user must traverse to its data dirs
      envs/<env>/                0711 (same reason)
      envs/<env>/env.json        the environment record (kind, versions, the backend's state)
      envs/<env>/pg/             0711, root's: the cluster's home, see below
      envs/<env>/pg/{data,run}   the environment's own PostgreSQL cluster (0700, owned by the server user)
      envs/<env>/pg/postgres.log 0600, owned by the server user
      envs/<env>/data/<service>  service data dirs
      envs/<env>/logs/<service>.log   0600 (service output can hold secrets)
      installs/<service>/<version>/
      secrets/<env>/<name>       0600

When the tool runs as root, PostgreSQL runs as an unprivileged user, which must be able to reach
``envs/<env>/pg``. If a directory above the state dir keeps it out (the state dir sits in root's 0700
home, in a ``mktemp -d`` dir…), the cluster's home moves to a root-owned 0711 base,
``/var/lib/upgrade-infra/<hash of the state dir>/envs/<env>/pg`` (``$UPGRADE_INFRA_PG_BASE``
overrides ``/var/lib/upgrade-infra``), and ``envs/<env>/pg`` becomes a symlink to it: the user's own
directories are never loosened, and the base belongs to this state dir (its ``state-dir`` file names
it; destroying the environment removes it).
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import re
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, model_validator

from upgrade_infra.core.errors import StateDirError, UnknownName
from upgrade_infra.core.fsutil import inside, remove_tree
from upgrade_infra.stack.manifest import NAME, check_name

TRAVERSE = 0o711
UMASK = 0o077
PG_BASE_ENV = "UPGRADE_INFRA_PG_BASE"
DEFAULT_PG_BASE = Path("/var/lib/upgrade-infra")


def private_umask() -> int:
    """Make everything this process creates from now on private to its owner (0700 dirs, 0600 files).

    Service logs hold live tokens, reports hold production figures: nothing the tool writes is for
    other users. Called whenever a state dir is opened, and by the CLI. Returns the previous umask.
    """
    return os.umask(UMASK)


def _user_bits(st: os.stat_result, user: str) -> int:
    """The rwx bits (as 0o7 mask) of ``st`` that apply to ``user`` (owner, group member or other)."""
    pw = pwd.getpwnam(user)
    if st.st_uid == pw.pw_uid:
        return (st.st_mode >> 6) & 0o7
    groups = {pw.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    return (st.st_mode >> 3) & 0o7 if st.st_gid in groups else st.st_mode & 0o7


def unreachable_for(path: Path, user: str) -> Path | None:
    """Where ``user`` is stopped on the way to reading ``path`` (a directory it cannot search, or the
    file itself when it cannot read it), or None when it can read it."""
    p = Path(os.path.realpath(path))
    blocker = traversal_blocker(p.parent, user)
    if blocker is not None:
        return blocker
    try:
        st = os.stat(p)
    except FileNotFoundError:
        return None
    want = 0o5 if stat.S_ISDIR(st.st_mode) else 0o4
    return None if pwd.getpwnam(user).pw_uid == 0 or _user_bits(st, user) & want == want else p


def traversal_blocker(path: Path, user: str) -> Path | None:
    """The first directory on the way from / to ``path`` (included) that ``user`` cannot search, or None.

    Pure stat checks (owner, group membership, mode bits; no ACLs), so nothing runs as that user.
    """
    pw = pwd.getpwnam(user)
    if pw.pw_uid == 0:
        return None
    groups = {pw.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    p = Path(os.path.abspath(path))
    for d in [*reversed(p.parents), p]:
        try:
            st = os.stat(d)
        except FileNotFoundError:
            return None  # below here the tool creates the directories itself
        if st.st_uid == pw.pw_uid:
            ok = st.st_mode & stat.S_IXUSR
        elif st.st_gid in groups:
            ok = st.st_mode & stat.S_IXGRP
        else:
            ok = st.st_mode & stat.S_IXOTH
        if not ok:
            return d
    return None


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


#: fields of records written before ``backend_state`` existed, moved into it on load
LEGACY_BACKEND_FIELDS = ("port_base", "processes")


class EnvRecord(BaseModel):
    name: str
    kind: str = "production"  # production | staging
    backend: str = "local"
    versions: dict[str, str]
    created_at: float
    source: str | None = None  # staging: the environment it was copied from
    ttl_s: float | None = None
    synced_at: float | None = None
    seeded: bool = False
    #: what the backend keeps about the environment (local: port block, processes; compose: project
    #: name); read and written by the backend only
    backend_state: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _legacy_fields(cls, data: Any) -> Any:
        """Records from before ``backend_state`` (top-level ``port_base``/``processes``) still load."""
        if isinstance(data, dict) and any(k in data for k in LEGACY_BACKEND_FIELDS):
            data = dict(data)
            bs = dict(data.get("backend_state") or {})
            for k in LEGACY_BACKEND_FIELDS:
                if k in data:
                    bs.setdefault(k, data.pop(k))
            data["backend_state"] = bs
        return data

    def expired(self, now: float | None = None) -> bool:
        return self.ttl_s is not None and (now or time.time()) > self.created_at + self.ttl_s


class StateDir:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def ensure(self) -> StateDir:
        private_umask()
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

    def checked(self, p: Path, what: str = "use") -> Path:
        """``p`` itself, once :func:`fsutil.inside` found it (symlinks resolved) inside the state dir,
        or inside the state dir's own PostgreSQL base (:meth:`server_dir`), which belongs to it too."""
        real = Path(os.path.join(self.root, p)).resolve()
        base = self.pg_base()
        if real.is_relative_to(base) and real != base and (base / "state-dir").is_file():
            return p
        inside(self.root, p, what)
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

    # -- where PostgreSQL's files live --------------------------------------------------------------
    def pg_base(self) -> Path:
        """This state dir's root-owned 0711 base outside it, for when the server user cannot reach it."""
        top = Path(os.environ.get(PG_BASE_ENV) or DEFAULT_PG_BASE)
        return top / hashlib.sha256(str(self.root).encode()).hexdigest()[:16]

    def pg_home(self, env: str, server_user: str | None) -> Path:
        """The directory holding ``env``'s cluster (data, run, postgres.log), reachable by ``server_user``."""
        return self.server_dir(Path("envs") / env / "pg", server_user, create=False)

    def server_dir(self, rel: str | Path, server_user: str | None, *, create: bool = True) -> Path:
        """``<state>/<rel>`` as a directory PostgreSQL's ``server_user`` can reach (cluster homes,
        quarantined and scratch clusters): itself, with 0711 directories on the way, when the server
        user can reach the state dir (or there is none: not root); otherwise a directory in
        :meth:`pg_base` that ``<state>/<rel>`` points to (a symlink). Raises StateDirError, before
        anything is created, when neither works, saying what to change. ``create=False``: inside the
        state dir, only say where (the caller creates it when it needs it; opening an environment
        must not create its directories); a symlink into the base is always made at once, so every
        later user of the path (a copy, a restore) lands in the base.
        """
        rel = Path(rel)
        if rel.is_absolute() or ".." in rel.parts:
            raise StateDirError(f"{rel} is not a path inside the state dir", fix="this is a bug: report it")
        link = self.root / rel
        if link.is_symlink():
            real = link.resolve()
            if not real.is_relative_to(self.pg_base()):
                raise StateDirError(f"{link} points to {real}, outside this state dir and its base {self.pg_base()}",
                                    fix=f"remove the symlink {link} (it was not made by upgrade-infra)")
            return real
        if link.is_dir() or server_user is None or traversal_blocker(self.root, server_user) is None:
            if create:
                self._traversable(self.root, rel)
            return link
        base = self.pg_base()
        blocker = traversal_blocker(base.parent, server_user)
        if blocker is not None:
            cant = traversal_blocker(self.root, server_user)
            raise StateDirError(
                f"PostgreSQL's server user {server_user!r} cannot reach {cant} (mode {_mode(cant)}) on the way to "
                f"the state dir, nor {blocker} (mode {_mode(blocker)}) on the way to {base}",
                fix=f"set ${PG_BASE_ENV} to a directory {server_user!r} can traverse, or pass --state-dir "
                    "outside private directories")
        try:
            for d in (base.parent, base):
                d.mkdir(exist_ok=True)
                os.chmod(d, TRAVERSE)
            marker = base / "state-dir"
            if not marker.exists():
                marker.write_text(f"{self.root}\n")  # whose base this is
            real = self._traversable(base, rel)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(real)
        except OSError as e:
            raise StateDirError(f"cannot create {base / rel} for PostgreSQL (the state dir {self.root} is out of "
                                f"reach of the server user {server_user!r}): {e.strerror}",
                                fix=f"set ${PG_BASE_ENV} to a writable directory {server_user!r} can traverse, "
                                    "or pass --state-dir outside private directories") from None
        return real

    @staticmethod
    def _traversable(top: Path, rel: Path) -> Path:
        d = top
        for part in rel.parts:
            d = d / part
            d.mkdir(exist_ok=True)
            os.chmod(d, TRAVERSE)
        return d

    def remove_pg_home(self, env: str) -> None:
        """Remove ``env``'s cluster home if it lives in the base (the symlink goes with the env dir)."""
        self.remove_server_dir(Path("envs") / env / "pg")

    def remove_server_dir(self, rel: str | Path) -> None:
        """Remove what :meth:`server_dir` made in the base for ``rel`` (and the base once it is empty)."""
        link = self.root / rel
        if not link.is_symlink():
            return
        real, base = link.resolve(), self.pg_base()
        if real.is_relative_to(base) and real != base:
            shutil.rmtree(real, ignore_errors=True)
            for d in real.parents:  # empty parents up to the base
                if d == base or not d.is_relative_to(base):
                    break
                try:
                    d.rmdir()
                except OSError:
                    break
        link.unlink(missing_ok=True)
        if base.is_dir() and {p.name for p in base.iterdir()} <= {"state-dir"}:
            shutil.rmtree(base, ignore_errors=True)

    def owns(self, path: Path) -> bool:
        """True when ``path`` lies inside this state dir or its PostgreSQL base."""
        p = Path(os.path.abspath(path))
        return p.is_relative_to(self.root) or p.is_relative_to(self.pg_base())

    def secrets_dir(self, env: str) -> Path:
        return self.path("secrets", check_name("environment", env))

    def remove(self, path: Path, *, ignore_errors: bool = False) -> None:
        """Delete ``path`` (a tree, a file or a link) if it lies inside the state dir (or its
        PostgreSQL base); refuse otherwise. A symlink is removed as a link, never followed."""
        p = Path(path)
        if not p.is_symlink() and p.exists():
            real = p.resolve()
            base = self.pg_base()
            if real.is_relative_to(base) and real != base and (base / "state-dir").is_file():
                shutil.rmtree(real, ignore_errors=ignore_errors) if real.is_dir() else real.unlink(missing_ok=True)
                return
        remove_tree(self.root, path, ignore_errors=ignore_errors)

    def private_dir(self, *parts: str) -> Path:
        d = self.path(*parts)
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(d, 0o700)
        return d


def orphan_bases(top: Path | None = None) -> list[Path]:
    """PostgreSQL bases (see :meth:`StateDir.pg_base`) whose state dir no longer exists and that run
    no cluster: what ``rm -r`` of a state dir leaves behind in ``/var/lib/upgrade-infra``."""
    top = Path(top or os.environ.get(PG_BASE_ENV) or DEFAULT_PG_BASE)
    out = []
    for base in sorted(top.iterdir()) if top.is_dir() else []:
        marker = base / "state-dir"
        try:
            owner = Path(marker.read_text().strip())
        except OSError:
            continue  # not ours
        if owner.exists() or any(_alive(p) for p in base.rglob("postmaster.pid")):
            continue
        out.append(base)
    return out


def prune_orphan_bases(top: Path | None = None) -> list[Path]:
    """Remove :func:`orphan_bases`; returns what was removed."""
    gone = orphan_bases(top)
    for base in gone:
        shutil.rmtree(base, ignore_errors=True)
    return gone


def _alive(pid_file: Path) -> bool:
    try:
        os.kill(int(pid_file.read_text().split()[0]), 0)
        return True
    except (OSError, ValueError, IndexError):
        return False


def _mode(p: Path | None) -> str:
    try:
        return oct(os.stat(p).st_mode & 0o777)[2:] if p else "?"
    except OSError:
        return "?"


def _not_writable(root: Path, e: OSError) -> StateDirError:
    return StateDirError(f"state dir {root} is not writable: {e.strerror}",
                         fix="pass --state-dir to a writable directory, or fix its permissions")


def default_state_dir(stack_path: Path) -> Path:
    return Path(stack_path).resolve().parent / ".upgrade-infra"
