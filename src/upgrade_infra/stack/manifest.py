"""The stack manifest (``stack.yaml``): typed with pydantic, loaded with line numbers.

Structure is checked by the models; references between sections (service names, databases,
template placeholders, port blocks) by :mod:`upgrade_infra.stack.crosschecks`. Every problem is
reported as ``file:line: field: problem (fix: …)`` and nothing is modified.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from upgrade_infra.core.errors import BadInput, ManifestError, ManifestIssue
from upgrade_infra.core.names import NAME, NAME_KINDS, OP_ID, RESTORE_POINT_ID, VERSION, check_name  # noqa: F401
from upgrade_infra.stack.yamlsource import YamlSource, load_yaml

MAX_MANIFEST_BYTES = 1 << 20  # a manifest is a page of YAML; anything bigger is refused before parsing

# the name patterns live in core (the state dir turns names into paths); re-exported here
Name = Annotated[str, Field(pattern=NAME)]
Version = Annotated[str, Field(pattern=VERSION)]
_FIX_BY_PATTERN = {NAME: NAME_KINDS["environment"][1], VERSION: NAME_KINDS["version"][1]}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Probe(Strict):
    """How to tell a service is healthy/ready: an HTTP path on its port, or a command; for readiness
    also ``check``: a declared check (any kind: http, request, workflow, sql…) that must pass too."""

    http: str | None = None
    command: str | None = None
    check: str | None = Field(None, description="readiness: name of a declared check that must pass too, "
                              "polled until it does (e.g. the app's real endpoint answers)")
    expect_status: int = 200
    timeout_s: float | None = Field(None, gt=0, description="readiness: overrides policies.readiness_timeout_s")

    @field_validator("http")
    @classmethod
    def _path(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("/"):
            raise ValueError("must be a path starting with '/', e.g. /healthz")
        return v


class VersionSpec(Strict):
    """Per-version overrides of how the service is installed and started."""

    command: str | None = None
    install: str | None = None
    env: dict[str, str] = {}


class ServiceSpec(Strict):
    port: int = Field(..., ge=1, le=99, description="offset of the service port inside the environment's port block")
    command: str = Field("", description="how to start it; empty under the compose backend: the image's own command")
    cwd: str | None = None
    install: str | None = Field(None, description="run once per version, cached under state_dir/installs")
    env: dict[str, str] = {}
    versions: dict[Version, VersionSpec | None]
    depends_on: list[str] = []
    migrates_on_start: bool = False
    migrate: str | None = None
    downgrade: str | None = None
    sql: str | None = Field(None, description="prints the offline SQL of a migration, for linting")
    health: Probe
    readiness: Probe | None = None
    data_dir: bool = Field(True, description="give the service a data dir, included in restore points")
    data_dir_exclude: list[str] = Field(
        [], description="glob patterns (relative to the data dir, e.g. cache/**) left out of restore points")
    openapi: str | None = None
    web_ui: str | None = None

    @field_validator("versions")
    @classmethod
    def _nonempty(cls, v: dict) -> dict:
        if not v:
            raise ValueError("declare at least one version")
        return v


class DatabaseSpec(Strict):
    owner: str = Field(..., description="the service that owns (and migrates) this database")


class PostgresSpec(Strict):
    major: int | None = Field(None, ge=10, le=30)
    databases: dict[Name, DatabaseSpec]
    settings: dict[str, str | int | float] = {}


class SecretSpec(Strict):
    env: str | None = Field(None, description="environment variable holding the value")
    file: str | None = Field(None, description="file holding the value (relative to the manifest)")
    generate: bool = Field(False, description="if neither is set, generate once and keep it 0600 in the state dir")
    staging: Literal["same", "own"] = Field(
        "own", description="'same': staging must use production's value (e.g. a key that decrypts copied data)")


class EnvironmentSpec(Strict):
    port_base: int = Field(..., ge=1024, le=65000)
    versions: dict[Name, Version] = {}
    backend: str = "local"
    disposable: bool = Field(False, description="may be destroyed and re-created from scratch (acceptance runs)")


# -- the Compose backend's view of the stack (``compose:``, written by `upgrade-infra import compose`) -------
class ComposePostgresSpec(Strict):
    service: str = Field("postgres", description="the Compose service name of the PostgreSQL container")
    image: str | None = Field(None, description="its image (default upgrade-infra/postgres:<postgres.major>)")
    volume: str | None = Field("pgdata", description="the named volume holding its data")
    user: str | None = Field(None, description="the superuser role of the user's own Compose file")
    password_secret: Name | None = None
    healthcheck: bool = True


class ComposeDatabaseSpec(Strict):
    users: list[str] = []
    password_secret: Name | None = None


class ComposeServiceSpec(Strict):
    service: str | None = Field(None, description="the Compose service name (default: the manifest's)")
    image: str = Field(..., description="image reference with {version} (or a digest per version in digests)")
    digests: dict[Version, str] = {}
    build: bool = False
    volumes: dict[str, str] = Field({}, description="named volume -> mount path in the container")
    ports: list[str] = Field([], description="what the user's file publishes (the backend publishes its own)")
    container_port: int | None = Field(None, ge=1, le=65535, description="the port the service listens on inside")
    healthcheck: bool = Field(False, description="the Compose file declares a healthcheck for it (readiness from it)")
    env_file: list[str] = []


class ComposeVolumeSpec(Strict):
    name: str | None = None
    external: bool = False


class ComposeSpec(Strict):
    """What only the ``compose`` backend needs: the user's Compose file, images and volumes."""

    file: str | None = Field(None, description="the Compose file, relative to stack.yaml (healthchecks come from it)")
    project: str | None = Field(None, description="the user's own project name (import); environments run as <stack>-<env>")
    pull: Literal["never", "missing"] = Field("never", description="never: an image missing on the engine is an error "
                                               "naming it; missing: pull it first (docker pull), once")
    postgres: ComposePostgresSpec = ComposePostgresSpec()
    databases: dict[Name, ComposeDatabaseSpec] = {}
    services: dict[Name, ComposeServiceSpec] = {}
    volumes: dict[str, ComposeVolumeSpec] = {}


class SeedSpec(Strict):
    """Fills a newly created production. With ``service:`` it is that service's one-off job: its env,
    cwd and installed version, run before the services start (the app's own import CLI)."""

    service: Name | None = Field(None, description="run as this service's one-off job, before the services start")
    command: str
    cwd: str | None = None
    env: dict[str, str] = {}
    size_mb: float = Field(20, gt=0)


class Retention(Strict):
    keep_last: int = Field(5, ge=1)
    max_age_days: float = Field(14, gt=0)
    quarantine_days: float = Field(7, gt=0)
    reports_keep_last: int = Field(30, ge=1)  # validation report dirs per environment (also max_age_days)


class Policies(Strict):
    rollback_budget_s: float = Field(300, gt=0)
    readiness_timeout_s: float = Field(60, gt=0)
    stop_timeout_s: float = Field(10, gt=0)
    watch_window_s: float = Field(5, ge=0)
    snapshot_strategy: str = "auto"  # auto: cow where the state dir's filesystem has reflinks, else clone
    retention: Retention = Retention()


MaskRuleName = Literal["fake_name", "fake_first_name", "fake_last_name", "fake_email", "hash", "null", "keep"]


class MaskRuleSpec(Strict):
    """Long form of a masking rule: ``{constant: v}``, ``{rule: fake_email, if_exists: true}``."""

    rule: MaskRuleName | None = None
    constant: Any = None
    if_exists: bool = Field(False, description="skip (and report) the rule when the column is absent from the "
                            "live schema, e.g. a column only some releases of the app have")

    @model_validator(mode="after")
    def _one_of(self) -> MaskRuleSpec:
        if (self.rule is None) == ("constant" not in self.model_fields_set):
            raise ValueError("give exactly one of rule: or constant:")
        return self


MaskRule = MaskRuleName | MaskRuleSpec


class StagingSpec(Strict):
    port_range: tuple[int, int] = (26000, 26999)
    ttl: str = Field("24h", pattern=r"^\d+[smhd]$")
    mask: bool = True
    overrides: dict[str, dict[str, str]] = Field({}, description="service -> env vars set in staging only")
    masking: dict[str, dict[str, dict[str, MaskRule]]] = Field({}, description="database -> table -> column -> rule")


class InvariantSpec(Strict):
    name: str
    database: str
    sql: str = Field(..., description="returns zero rows when the invariant holds")


class MigrationSpec(Strict):
    max_duration_s: float = 120
    max_exclusive_lock_s: float = 2
    timeout_s: float = 600
    expected_changes: dict[str, dict[str, list[str]]] = Field(
        {}, description="version -> database -> tables (or table.column) the migration to that version may change")
    expected_changes_files: list[str] = Field(
        [], description="YAML files with more expected_changes (relative to the manifest), e.g. written by "
                        "`migrate test --accept FILE` and reviewed")
    invariants: list[InvariantSpec] = []


class NotificationSpec(Strict):
    url: str
    events: list[str] = ["upgrade", "rollback"]
    format: Literal["json", "slack"] = "json"
    timeout_s: float = 3


class CheckSpec(BaseModel):
    """A declared check. Kind-specific fields are validated by the check-kind registry."""

    model_config = ConfigDict(extra="allow")
    name: str
    kind: str
    suite: str = "health"
    service: str | None = None
    smoke: bool = False


class Manifest(Strict):
    version: Literal[1] = 1
    name: Name
    postgres: PostgresSpec
    services: dict[Name, ServiceSpec]
    environments: dict[Name, EnvironmentSpec]
    secrets: dict[Name, SecretSpec] = {}
    seed: SeedSpec | None = None
    policies: Policies = Policies()
    staging: StagingSpec = StagingSpec()
    migration: MigrationSpec = MigrationSpec()
    checks: list[CheckSpec] = []
    notifications: list[NotificationSpec] = []
    compose: ComposeSpec | None = None

    # set by load_manifest, not part of the YAML
    _path: Path | None = None
    _source: YamlSource | None = None
    _sha256: str = ""
    _warnings: list = []  # ManifestIssue: worth saying, not worth refusing (see manifest_checks.warning_issues)

    @property
    def path(self) -> Path:
        assert self._path is not None
        return self._path

    @property
    def stack_dir(self) -> Path:
        return self.path.parent

    @property
    def sha256(self) -> str:
        return self._sha256

    @property
    def warnings(self) -> list:
        return list(self._warnings)

    def line_of(self, *loc: str | int) -> int | None:
        return self._source.line_of(loc) if self._source else None

    def service(self, name: str) -> ServiceSpec:
        if name not in self.services:
            from upgrade_infra.core.errors import UnknownName

            raise UnknownName(f"unknown service {name!r} in {self.path}",
                              fix=f"use one of: {', '.join(self.services)}")
        return self.services[name]

    def version_of(self, service: str, version: str) -> VersionSpec:
        svc = self.service(service)
        if version not in svc.versions:
            from upgrade_infra.core.errors import UnknownName

            raise UnknownName(f"service {service!r} has no version {version!r} in {self.path}",
                              fix=f"use one of: {', '.join(svc.versions)} or declare it under services.{service}.versions")
        return svc.versions[version] or VersionSpec()

    def start_order(self) -> list[str]:
        """Services in dependency order (dependencies first)."""
        order: list[str] = []
        seen: set[str] = set()

        def visit(n: str) -> None:
            if n in seen:
                return
            seen.add(n)
            for d in self.services[n].depends_on:
                visit(d)
            order.append(n)

        for n in self.services:
            visit(n)
        return order


def _issue_from_pydantic(source: YamlSource, err: dict) -> ManifestIssue:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p[:1].isupper()))  # drop union tags
    field = ".".join(str(p) for p in loc) or "(top level)"
    kind, fix = err["type"], None
    problem = err["msg"]
    if kind == "extra_forbidden":
        problem = f"unknown field {loc[-1]!r}"
        fix = _did_you_mean(source, loc) or "remove it; see docs/reference/manifest.md"
    elif kind == "missing":
        fix = f"add '{loc[-1]}:'"
    elif kind == "string_pattern_mismatch":
        pattern = (err.get("ctx") or {}).get("pattern")
        fix = _FIX_BY_PATTERN.get(pattern, f"match the pattern {pattern}")
        what = {NAME: "name", VERSION: "version"}.get(pattern, "value")
        if loc and loc[-1] == "[key]":  # a mapping key, e.g. a version under services.<svc>.versions
            loc = loc[:-1]
            field = ".".join(str(p) for p in loc[:-1])
        problem = f"{err.get('input')!r} is not a valid {what}"
    return ManifestIssue(str(source.path), source.line_of(loc), field, problem, fix)


def _did_you_mean(source: YamlSource, loc: tuple) -> str | None:
    import difflib

    model: Any = Manifest
    for part in loc[:-1]:
        fld = getattr(model, "model_fields", {}).get(part) if isinstance(part, str) else None
        if fld is None:
            continue
        ann = fld.annotation
        model = next((a for a in _flatten(ann) if isinstance(a, type) and issubclass(a, BaseModel)), model)
    names = list(getattr(model, "model_fields", {}))
    best = difflib.get_close_matches(str(loc[-1]), names, n=1)
    return f"did you mean {best[0]!r}?" if best else None


def _flatten(ann: Any) -> list:
    args = getattr(ann, "__args__", None)
    if not args:
        return [ann]
    out = []
    for a in args:
        out.extend(_flatten(a))
    return out


def load_manifest(path: str | Path) -> Manifest:
    p = Path(path).resolve()
    if not p.is_file():
        raise BadInput(f"stack manifest {path} not found",
                       fix="pass --stack PATH, set UPGRADE_INFRA_STACK, or create stack.yaml (see docs/reference/manifest.md)")
    size = p.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise ManifestError([ManifestIssue(str(p), None, "(file)", f"the manifest is {size / 1e6:.1f} MB, over the "
                                           f"{MAX_MANIFEST_BYTES // (1 << 20)} MB limit; it was not parsed",
                                           "a stack manifest is a page of YAML: check that --stack names the "
                                           "right file")])
    source = load_yaml(p)
    try:
        m = Manifest.model_validate(source.data)
    except ValidationError as e:
        raise ManifestError([_issue_from_pydantic(source, err) for err in e.errors()]) from None
    m._path, m._source = p, source
    m._sha256 = hashlib.sha256(p.read_bytes()).hexdigest()
    from upgrade_infra.stack.crosschecks import semantic_issues, warning_issues

    issues = semantic_issues(m)
    if issues:
        raise ManifestError([ManifestIssue(str(p), source.line_of(loc), ".".join(map(str, loc)), prob, fix)
                             for loc, prob, fix in issues])
    m._warnings = [ManifestIssue(str(p), source.line_of(loc), ".".join(map(str, loc)), prob, fix)
                   for loc, prob, fix in warning_issues(m)]
    return m


def parse_duration(text: str) -> float:
    m = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if not m:
        raise BadInput(f"bad duration {text!r}", fix="write e.g. 90s, 30m, 24h or 7d")
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
