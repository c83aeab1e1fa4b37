"""Restore-point metadata: what was captured, with checksums, stored 0600 in a 0700 directory.

Layout: ``<state>/restore-points/<id>/meta.json`` plus the strategy's payload (``dump/<db>/``,
``pgdata/``) and the service data dirs (``data/<service>``). The metadata is written once, when
the capture is complete; its own ``checksum`` (sha256 of the canonical JSON of every other field)
and the sha256 of every payload file let ``verify`` detect a missing or corrupt restore point.
A directory without ``meta.json`` is a capture that never finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, ValidationError, field_validator

from upgrade_infra.core import fsutil
from upgrade_infra.core.errors import RestorePointError, UnknownName, UpgradeInfraError
from upgrade_infra.core.state import StateDir, atomic_write_json
from upgrade_infra.stack.manifest import check_name

META = "meta.json"
SPARE = "spare"  # <rp>/spare/: second copy of the payload, consumed by an O(1) rollback


class RestorePoint(BaseModel):
    id: str
    env: str
    strategy: str
    strategy_why: str | None = None  # why this strategy (``auto`` says what it detected)
    created_at: float
    label: str | None = None
    op: str | None = None
    versions: dict[str, str]
    manifest_sha256: str
    pg_major: int
    images: dict[str, str] = {}  # service -> image ID it ran (container backends: tags move, IDs do not)
    databases: dict[str, dict[str, Any]] = {}
    data_dirs: dict[str, str] = {}
    #: service data in engine volumes: logical volume -> {live, volume (the copy), bytes}
    volumes: dict[str, dict[str, Any]] = {}
    files: dict[str, str] = {}  # path relative to the restore point dir -> sha256
    bytes: int = 0
    capture_s: float = 0.0
    downtime_s: float | None = None  # kept for restore points written by earlier versions
    converted_from: str | None = None
    imported_from: str | None = None
    checksum: str = ""

    @field_validator("data_dirs")
    @classmethod
    def _inside(cls, v: dict[str, str]) -> dict[str, str]:
        """Copies of data dirs live inside the restore point (an imported meta.json could say otherwise)."""
        for rel in v.values():
            p = PurePosixPath(rel)
            if p.is_absolute() or ".." in p.parts or not p.parts:
                raise ValueError(f"data dir {rel!r} is not a path inside the restore point")
        return v

    @property
    def short(self) -> str:
        return self.id.removeprefix("rp-")

    def compute_checksum(self) -> str:
        return checksum_of(self.model_dump())

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "env": self.env, "strategy": self.strategy, "label": self.label,
                "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.created_at)),
                "created_at": self.created_at, "versions": self.versions, "strategy_why": self.strategy_why, "mb": round(self.bytes / 1e6, 1),
                "databases": sorted(self.databases), "op": self.op}


def checksum_of(data: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of every field but ``checksum`` (as stored: fields added to the
    model later do not invalidate older restore points)."""
    body = {k: v for k, v in data.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def new_id() -> str:
    return "rp-" + secrets.token_hex(4)


def root(state: StateDir) -> Path:
    return state.root / "restore-points"


def rp_dir(state: StateDir, rp_id: str) -> Path:
    """``<state>/restore-points/<id>``; a malformed id (``../x``, ``/tmp``) is BadInput, exit 2."""
    return state.path("restore-points", check_name("restore point", rp_id))


def make_dir(state: StateDir, rp_id: str) -> Path:
    state.private_dir("restore-points")
    d = rp_dir(state, rp_id)
    d.mkdir(mode=0o700)
    return d


def save(state: StateDir, rp: RestorePoint) -> None:
    rp.checksum = rp.compute_checksum()
    atomic_write_json(rp_dir(state, rp.id) / META, rp.model_dump(), mode=0o600)


def load(state: StateDir, rp_id: str) -> RestorePoint:
    d = rp_dir(state, rp_id)
    try:
        return read(d / META, f"restore point {rp_id}",
                    fix="pick another restore point, or restore it from an export (`snapshot import`)")
    except FileNotFoundError:
        if d.exists():
            raise RestorePointError(f"restore point {rp_id} is incomplete (its capture never finished): {d}",
                                    fix=f"delete it with `upgrade-infra snapshot prune` or rm -r {d}") from None
        raise UnknownName(f"no restore point {rp_id!r} in {root(state)}",
                          fix="list them with `upgrade-infra snapshot list`") from None


def read(path: Path, label: str, *, fix: str, invalid: type[UpgradeInfraError] = RestorePointError) -> RestorePoint:
    """The restore point whose metadata is the file ``path`` (FileNotFoundError when there is none): JSON,
    a valid :class:`RestorePoint` and unmodified (its own checksum); otherwise RestorePointError (``invalid``
    when it is not a valid restore point) naming ``label`` and saying ``fix``."""
    try:
        raw = json.loads(path.read_text())
    except ValueError:
        raise RestorePointError(f"{label}: {path} is corrupt (not JSON)", fix=fix) from None
    try:
        rp = RestorePoint.model_validate(raw)
    except ValidationError as e:
        raise invalid(f"{label}: {path} is invalid: {e.errors()[0]['msg']}", fix=fix) from None
    if raw.get("checksum") != checksum_of(raw):
        raise RestorePointError(f"{label}: metadata checksum mismatch in {path}", fix=fix)
    return rp


def all_ids(state: StateDir) -> list[str]:
    r = root(state)
    return sorted(p.name for p in r.iterdir() if p.is_dir()) if r.exists() else []


def incomplete_ids(state: StateDir) -> list[str]:
    return [i for i in all_ids(state) if not (rp_dir(state, i) / META).exists()]


def checksum_tree(base: Path, rel: str) -> dict[str, str]:
    """sha256 of every regular file under ``base/rel``, keyed by path relative to ``base``."""
    out = {}
    for dirpath, _, files in os.walk(base / rel):
        for f in files:
            p = Path(dirpath) / f
            if p.is_file() and not p.is_symlink():
                out[str(p.relative_to(base))] = fsutil.sha256_file(p)
    return out


def verify_files(base: Path, files: dict[str, str], prefix: str = "") -> list[str]:
    """Problems (missing or changed files) under ``base`` for entries starting with ``prefix``."""
    problems = []
    for rel, digest in sorted(files.items()):
        if not rel.startswith(prefix):
            continue
        p = base / rel
        if not p.is_file():
            problems.append(f"missing {rel}")
        elif fsutil.sha256_file(p) != digest:
            problems.append(f"checksum mismatch: {rel}")
    return problems


def private_files(path: Path) -> None:
    """Restore-point files 0600 and dirs 0700 (owners kept: a copied pgdata stays the server's)."""
    os.chmod(path, 0o700)
    for dirpath, dirs, files in os.walk(path):
        for d in dirs:
            os.chmod(Path(dirpath) / d, 0o700)
        for f in files:
            p = Path(dirpath) / f
            if not p.is_symlink():
                os.chmod(p, 0o600)


def remove_dir(path: Path) -> None:
    """Delete a restore point's directory (as made by :func:`rp_dir`), never anything outside the state dir."""
    assert path.parent.name == "restore-points", path
    fsutil.remove_tree(path.parent.parent, path, ignore_errors=True)
