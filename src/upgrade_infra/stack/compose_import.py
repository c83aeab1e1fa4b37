"""``import compose``: a ``stack.yaml`` written from a user's existing Docker Compose file.

Pure: reads the Compose file (with line numbers), the ``.env`` beside it, the services' ``env_file``s and
the process environment, and returns an :class:`ImportResult` (the manifest text and what was found);
:func:`write_stack` writes it. What it finds:

- the PostgreSQL service (by image, else by ``POSTGRES_*``/``PGDATA`` env), its major from the tag and its
  data volume;
- the databases: ``POSTGRES_DB``, connection URLs (``postgresql://user:pass@host:port/db``,
  ``postgres+psycopg2://…``) and per-app variables (n8n ``DB_POSTGRESDB_*``, Flowise ``DATABASE_*``,
  Letta ``LETTA_PG_*``, ``*_DATABASE``, libpq ``PG*``), rewritten to ``{db.<name>.*}`` placeholders;
- every other service: image repository with ``{version}``, tag as version (digests kept), named volumes,
  healthcheck (HTTP path from ``curl``/``wget``), ``depends_on``, published ports and env;
- what it could not infer, each with the Compose file's line and the ``stack.yaml`` key to edit.

Secrets: ``${VAR}`` references and the values of secret-looking keys become ``secrets:`` entries naming the
variable (``{env: VAR}``); no value of a secret-looking variable, of a secret-looking key, or of a password in
a URL is ever written (checked on the final text before it is returned).

The manifest schema has no field yet for what only the Compose backend needs (project name, images,
volumes, published ports): that goes under the top-level ``compose:`` mapping (:data:`COMPOSE_KEY`); the rest
of the document is validated with the real manifest loader.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from upgrade_infra.core.errors import BadInput, ManifestError
from upgrade_infra.stack.manifest import VERSION, load_manifest
from upgrade_infra.stack.yamlsource import YamlSource, load_yaml

COMPOSE_KEY = "compose"  # the mapping the manifest schema does not have yet (see SCHEMA_ADDITIONS)
MAX_COMPOSE_BYTES = 1 << 20
PORT_BASE = 25400  # the reference stack's production block; staging.port_range defaults to 26000-26999
TODO = "TODO(import)"

# variable / env key names whose values are secrets (a superset of redact.SECRET_NAME: KEY alone too)
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|_PASS$|_PWD$|SECRET|TOKEN|KEY|CREDENTIAL|PRIVATE", re.I)
MOVING_TAGS = {"latest", "main", "master", "stable", "nightly", "dev", "develop", "edge", "beta", "next",
               "release", "lts", "alpine", "slim"}
PG_REPOS = re.compile(r"^(?:library/)?postgres$|^pgvector/pgvector$|^ankane/pgvector$|^timescale/timescaledb(?:-ha"
                      r"|-postgis)?$|^supabase/postgres$|^bitnami/postgresql(?:-repmgr)?$|^postgis/postgis$"
                      r"|^tensorchord/pgvecto-rs$|^paradedb/paradedb$|^cloudnative-pg/postgresql$")
PG_ENV = ("POSTGRES_PASSWORD", "POSTGRES_DB", "POSTGRES_USER", "POSTGRES_INITDB_ARGS", "PGDATA",
          "POSTGRESQL_PASSWORD", "POSTGRESQL_DATABASE", "POSTGRES_PASSWORD_FILE")
PG_DATA_TARGETS = ("/var/lib/postgresql", "/bitnami/postgresql", "/home/postgres/pgdata")
URL_SCHEMES = re.compile(r"^postgres(?:ql)?(?:\+[a-z0-9_]+)?$")

# manifest fields the compose backend needs, proposed as additions to the schema (reported by the CLI)
SCHEMA_ADDITIONS = [
    "compose: ComposeSpec | None (top level): the Compose backend's view of the stack, as written by import",
    "compose.file: str: the Compose file, relative to stack.yaml",
    "compose.project: str: the production project name (volumes are <project>_<volume>; a rename starts "
    "on new, empty volumes)",
    "compose.postgres: {service: str, image: str, volume: str | None, user: str | None, "
    "password_secret: Name | None, healthcheck: bool}",
    "compose.services.<svc>: {service: str (the Compose name), image: str with {version} (or {digest}), "
    "digests: dict[Version, str], build: bool, volumes: dict[volume, target], ports: list[str], "
    "container_port: int | None, healthcheck: bool, env_file: list[str]}",
    "compose.volumes.<volume>: {name: str, external: bool}",
    "services.<svc>.command: optional (empty = the image's own command) when the environment's backend is "
    "compose; the import writes '' today",
    "environments.<env>.backend: Literal['local', 'compose'] (a free string today)",
    "{db.<name>.host|port|user|password|url} rendered for containers (the PostgreSQL service's name on the "
    "project network) by the compose backend",
]


# -- results --------------------------------------------------------------------------------------
@dataclass
class NotInferred:
    """One thing the import could not infer (or that needs a decision), where it is and what to edit."""

    service: str | None
    problem: str
    file: str
    line: int | None
    key: str | None  # the stack.yaml key to edit (dotted), or None when the fix is in the Compose file
    fix: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        who = f"{self.service}: " if self.service else ""
        return f"{who}{self.problem} ({where}) → {self.fix}"


@dataclass
class ImportResult:
    compose_file: Path
    project: str
    stack_name: str
    text: str  # the stack.yaml to write
    data: dict[str, Any]  # the same, as plain data
    postgres: dict[str, Any]
    databases: dict[str, dict[str, Any]]
    services: dict[str, dict[str, Any]]
    secrets: dict[str, str]  # secret name -> variable name
    not_inferred: list[NotInferred]
    schema_additions: list[str] = field(default_factory=lambda: list(SCHEMA_ADDITIONS))

    def to_dict(self) -> dict[str, Any]:
        return {"compose_file": str(self.compose_file), "project": self.project, "stack": self.stack_name,
                "postgres": self.postgres, "databases": self.databases, "services": self.services,
                "secrets": self.secrets, "not_inferred": [dict(asdict(n), text=str(n)) for n in self.not_inferred],
                "pending_schema": self.schema_additions, "manifest": self.data}


# -- .env and interpolation ---------------------------------------------------------------------
def read_dotenv(path: Path, lookup: Mapping[str, str] | None = None) -> dict[str, str]:
    """``KEY=VALUE`` lines as Compose reads them: comments, ``export``, quotes, ``${VAR}`` in values."""
    out: dict[str, str] = {}
    try:
        text = path.read_text()
    except OSError:
        return out
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", key):
            continue
        value = value.strip()
        if value[:1] == "'" and value.endswith("'") and len(value) >= 2:
            out[key] = value[1:-1]
            continue
        if value[:1] == '"' and value.endswith('"') and len(value) >= 2:
            value = value[1:-1].replace('\\n', "\n").replace('\\"', '"')
        else:
            value = re.sub(r"\s+#.*$", "", value)
        env = {**out, **(lookup or {})}
        out[key] = Interpolator(env).plain(value)
    return out


_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MARK = re.compile("\ue000(\\d+)\ue001")


@dataclass
class Resolved:
    """A value after interpolation. Parts whose value is not known here, or must never be written (a secret
    variable), are markers: :meth:`known` says whether a part is free of them."""

    raw: str
    text: str
    refs: list[str] = field(default_factory=list)  # variables referenced, in order
    opaque: dict[str, str] = field(default_factory=dict)  # marker -> variable
    unset: list[str] = field(default_factory=list)  # referenced, no value, no default

    def known(self, part: str | None = None) -> bool:
        return not _MARK.search(self.text if part is None else part)

    def value(self) -> str | None:
        return self.text if self.known() else None


class Interpolator:
    """Compose's interpolation: ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?err}``,
    ``${VAR:+alt}``, nesting, ``$$``. Values come from ``env`` (process environment over ``.env``); the value
    of a variable whose name looks secret is never substituted (it becomes a marker)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def plain(self, text: str) -> str:
        """For ``.env`` values only: everything substituted, nothing opaque."""
        r = Resolved(text, "")
        r.text = self._expand(text, r, secret_ok=True)
        return _MARK.sub("", r.text)

    def resolve(self, value: Any) -> Resolved:
        text = "" if value is None else (str(value).lower() if isinstance(value, bool) else str(value))
        r = Resolved(text, "")
        r.text = self._expand(text, r, secret_ok=False)
        return r

    def _expand(self, s: str, r: Resolved, secret_ok: bool) -> str:
        out: list[str] = []
        i = 0
        while i < len(s):
            c = s[i]
            if c != "$":
                out.append(c)
                i += 1
                continue
            nxt = s[i + 1:i + 2]
            if nxt == "$":
                out.append("$")
                i += 2
            elif nxt == "{":
                j = _closing(s, i + 1)
                if j < 0:
                    out.append(s[i:])
                    break
                out.append(self._subst(s[i + 2:j], r, secret_ok))
                i = j + 1
            elif m := _VAR.match(s, i + 1):
                out.append(self._var(m.group(), None, "", r, secret_ok))
                i = m.end()
            else:
                out.append("$")
                i += 1
        return "".join(out)

    def _subst(self, body: str, r: Resolved, secret_ok: bool) -> str:
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?", body, re.S)
        if not m:
            return self._mark(body, r)
        return self._var(m.group(1), m.group(2), m.group(3) or "", r, secret_ok)

    def _var(self, name: str, op: str | None, arg: str, r: Resolved, secret_ok: bool) -> str:
        r.refs.append(name)
        is_set = name in self.env
        value = self.env.get(name, "")
        usable = is_set and (bool(value) or not (op or "").startswith(":"))
        if op in ("+", ":+"):
            return self._expand(arg, r, secret_ok) if usable else ""
        if not usable and op in ("-", ":-"):
            default = self._expand(arg, r, secret_ok)
            return default if secret_ok or not SECRET_NAME.search(name) else self._mark(name, r)
        if not usable:
            if not is_set:
                r.unset.append(name)
            return self._mark(name, r)
        if SECRET_NAME.search(name) and not secret_ok:
            return self._mark(name, r)
        return value

    @staticmethod
    def _mark(name: str, r: Resolved) -> str:
        marker = f"\ue000{len(r.opaque)}\ue001"
        r.opaque[marker] = name
        return marker


def _closing(s: str, brace: int) -> int:
    depth, i = 0, brace
    while i < len(s):
        if s.startswith("${", i):
            depth += 1
            i += 2
            continue
        if s[i] == "{":
            depth += 1
        elif s[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


# -- small parsers ----------------------------------------------------------------------------------
@dataclass
class Image:
    repository: str
    tag: str | None
    digest: str | None

    @classmethod
    def parse(cls, ref: str) -> Image:
        digest = None
        if "@" in ref:
            ref, digest = ref.split("@", 1)
        slash = ref.rfind("/")
        colon = ref.rfind(":")
        if colon > slash:
            return cls(ref[:colon], ref[colon + 1:], digest)
        return cls(ref, None, digest)

    @property
    def short(self) -> str:
        """The repository without its registry: ``docker.io/library/postgres`` -> ``library/postgres``."""
        parts = self.repository.split("/")
        if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
            parts = parts[1:]
        return "/".join(parts)


def pg_major(image: Image) -> int | None:
    tag = image.tag or ""
    if m := re.search(r"(?:^|[-_.])pg(\d{1,2})(?:$|[-_.])", tag):
        return int(m.group(1))
    if image.short.startswith(("timescale/", "paradedb/", "tensorchord/")):
        return None  # their leading number is their own version
    if m := re.match(r"^(\d{1,2})(?:$|[-_.])", tag):
        return int(m.group(1))
    return None


def sanitize(name: str, taken: set[str] | None = None) -> str:
    """A manifest name (``NAME``) from a Compose/database/variable name."""
    n = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_") or "x"
    if not n[0].isalpha():
        n = "s-" + n
    n = n[:40]
    base, i = n, 2
    while taken is not None and n in taken:
        n = f"{base[:37]}-{i}"
        i += 1
    return n


def _looks_secret(key: str) -> bool:
    return bool(SECRET_NAME.search(key))


def _escape(text: str) -> str:
    """A literal for a manifest template: braces doubled."""
    return text.replace("{", "{{").replace("}", "}}")


def _cmd_text(test: Any) -> str:
    if isinstance(test, list | tuple):
        items = [str(x) for x in test]
        if items and items[0] == "CMD-SHELL":
            return " ".join(items[1:])
        if items and items[0] == "CMD":
            items = items[1:]
        return shlex.join(items)
    return "" if test is None else str(test)


_URL_IN_CMD = re.compile(r"https?://(?:localhost|127\.0\.0\.1|0\.0\.0\.0|\[::1\]|[\w.-]+)(?::([^/\s'\"]+))?"
                         r"(/[^\s'\"|;&)]*)?")


# -- reading the Compose file -----------------------------------------------------------------------
class _Where:
    """Lines of the Compose file (YamlSource.line_of, tolerant of merge keys)."""

    def __init__(self, src: YamlSource, display: str) -> None:
        self.src, self.display = src, display

    def line(self, *loc: str | int) -> int | None:
        try:
            return self.src.line_of(tuple(loc))
        except Exception:  # noqa: BLE001 - keys from a merge (<<: *anchor) have no position of their own
            for n in range(len(loc) - 1, 0, -1):
                try:
                    return self.src.line_of(tuple(loc[:n]))
                except Exception:  # noqa: BLE001
                    continue
            return None


def _env_items(env: Any) -> list[tuple[str, Any, int | None]]:
    """``environment:`` as (key, raw value or None for a bare key, index in the list or None)."""
    out: list[tuple[str, Any, int | None]] = []
    if isinstance(env, Mapping):
        for k, v in env.items():
            out.append((str(k), v, None))
    elif isinstance(env, list):
        for i, item in enumerate(env):
            k, sep, v = str(item).partition("=")
            out.append((k.strip(), v if sep else None, i))
    return out


@dataclass
class _Mount:
    kind: str  # volume, bind, anonymous, tmpfs, other
    source: str | None
    target: str
    index: int
    read_only: bool = False


def _mounts(vols: Any, interp: Interpolator, named: set[str]) -> list[_Mount]:
    out: list[_Mount] = []
    for i, v in enumerate(vols or []):
        if isinstance(v, Mapping):
            kind = str(v.get("type", "volume"))
            src = interp.resolve(v.get("source")).text if v.get("source") is not None else None
            tgt = interp.resolve(v.get("target", "")).text
            if kind == "volume" and not src:
                kind = "anonymous"
            out.append(_Mount(kind if kind in ("volume", "bind", "tmpfs", "anonymous") else "other", src, tgt, i,
                              bool(v.get("read_only"))))
            continue
        text = interp.resolve(v).text
        parts = text.split(":")
        if len(parts) == 1:
            out.append(_Mount("anonymous", None, parts[0], i))
            continue
        src, tgt = parts[0], parts[1]
        ro = len(parts) > 2 and "ro" in parts[2].split(",")
        is_path = src.startswith((".", "/", "~", "$")) or "/" in src or src not in named and not re.fullmatch(
            r"[A-Za-z0-9][A-Za-z0-9_.-]*", src)
        out.append(_Mount("bind" if is_path else "volume", src, tgt, i, ro))
    return out


def _ports(ports: Any, interp: Interpolator) -> list[tuple[str, int | None, int]]:
    """(the mapping as written after interpolation, container port, index)."""
    out: list[tuple[str, int | None, int]] = []
    for i, p in enumerate(ports or []):
        if isinstance(p, Mapping):
            target = interp.resolve(p.get("target")).value()
            pub = interp.resolve(p.get("published")).value() if p.get("published") is not None else None
            host = interp.resolve(p.get("host_ip")).value() if p.get("host_ip") else None
            text = ":".join(x for x in (host, pub, target) if x)
            cport = target
        else:
            r = interp.resolve(p)
            text = r.text if r.known() else str(p)
            cport = r.text.split("/")[0].rsplit(":", 1)[-1] if r.known(r.text.split("/")[0].rsplit(":", 1)[-1]) \
                else None
        out.append((text, int(cport) if cport and cport.isdigit() else None, i))
    return out


def _depends(dep: Any) -> list[str]:
    if isinstance(dep, Mapping):
        return [str(k) for k in dep]
    if isinstance(dep, list):
        return [str(d) for d in dep]
    return []


def _env_files(svc: Mapping, base: Path) -> list[tuple[str, Path]]:
    ef = svc.get("env_file")
    items = ef if isinstance(ef, list) else ([ef] if ef else [])
    out = []
    for it in items:
        p = it.get("path") if isinstance(it, Mapping) else it
        if p:
            out.append((str(p), (base / str(p)).resolve()))
    return out


# -- database connection settings ---------------------------------------------------------------------
@dataclass
class _Conn:
    """A database connection found in one service's environment."""

    service: str  # Compose service name
    via: str  # how it was recognised (e.g. DATABASE_URL, n8n DB_POSTGRESDB_*)
    keys: dict[str, str]  # env key -> part (url, host, port, name, user, password)
    host: str | None
    port: int | None
    name: str | None  # None: not known here
    name_ref: str | None  # the variable naming it, when not known
    user: str | None
    password_ref: str | None  # the variable holding the password, if any
    literal_password: bool
    scheme: str | None = None
    query: str = ""
    line_key: str = ""  # env key whose line is reported


_GROUPS = [  # (label, env key -> part); the name key decides whether the group is present
    ("n8n DB_POSTGRESDB_*", {"DB_POSTGRESDB_DATABASE": "name", "DB_POSTGRESDB_HOST": "host",
                             "DB_POSTGRESDB_PORT": "port", "DB_POSTGRESDB_USER": "user",
                             "DB_POSTGRESDB_PASSWORD": "password"}),
    ("Flowise DATABASE_*", {"DATABASE_NAME": "name", "DATABASE_HOST": "host", "DATABASE_PORT": "port",
                            "DATABASE_USER": "user", "DATABASE_PASSWORD": "password"}),
    ("Letta LETTA_PG_*", {"LETTA_PG_DB": "name", "LETTA_PG_HOST": "host", "LETTA_PG_PORT": "port",
                          "LETTA_PG_USER": "user", "LETTA_PG_PASSWORD": "password"}),
    ("POSTGRES_*", {"POSTGRES_DB": "name", "POSTGRES_HOST": "host", "POSTGRES_PORT": "port",
                    "POSTGRES_USER": "user", "POSTGRES_PASSWORD": "password"}),
    ("libpq PG*", {"PGDATABASE": "name", "PGHOST": "host", "PGPORT": "port", "PGUSER": "user",
                   "PGPASSWORD": "password"}),
]
_NAME_SUFFIX = re.compile(r"^(?P<p>[A-Z0-9_]*?)_?(?:DATABASE|DB_NAME|DBNAME)$")


# -- the import -----------------------------------------------------------------------------------------
class _Importer:
    def __init__(self, path: Path, project: str | None, stack_dir: Path, environ: Mapping[str, str],
                 shown: str) -> None:
        self.path = path
        self.display = path.name  # in the not-inferred list (the Compose file's own name)
        self.shown = shown  # in errors: the path as given
        self.stack_dir = stack_dir
        self.items: list[NotInferred] = []
        self.secret_values: set[str] = set()
        dotenv = read_dotenv(path.parent / ".env", environ)
        self.env_all = {**dotenv, **environ}  # Compose: the shell's environment wins over .env
        self.interp = Interpolator(self.env_all)
        for k, v in self.env_all.items():
            if _looks_secret(k) and k in dotenv:
                self.secret_values.add(v)
        self.project_arg = project
        self.secrets: dict[str, dict[str, Any]] = {}  # name -> {env, from}
        self.secret_vars: dict[str, str] = {}  # variable -> secret name
        self.unset_vars: dict[str, int | None] = {}  # variable -> first line referencing it

    # -- helpers
    def note(self, service: str | None, problem: str, line: int | None, key: str | None, fix: str) -> None:
        self.items.append(NotInferred(service, problem, self.display, line, key, fix))

    def secret_for(self, var: str, origin: str) -> str:
        if var in self.secret_vars:
            return self.secret_vars[var]
        name = sanitize(var, set(self.secrets))
        self.secrets[name] = {"env": var, "from": origin}
        self.secret_vars[var] = name
        return name

    # -- main
    def run(self) -> ImportResult:
        if self.path.stat().st_size > MAX_COMPOSE_BYTES:
            raise BadInput(f"{self.path}: the file is over {MAX_COMPOSE_BYTES >> 20} MB; it was not parsed",
                           fix="pass the docker-compose.yml of the stack")
        try:
            src = load_yaml(self.path)
        except ManifestError as e:
            issue = e.issues[0]
            where = f"{issue.file}:{issue.line}" if issue.line else issue.file
            if issue.field == "(top level)":
                raise BadInput(f"{where}: not a Compose file: expected a mapping with services:",
                               fix="pass the docker-compose.yml (or compose.yaml) of the stack") from None
            raise BadInput(f"{where}: {issue.problem}", fix=issue.fix or "fix the Compose file") from None
        self.where = _Where(src, self.display)
        doc = src.data
        services = doc.get("services")
        if not isinstance(services, Mapping) or not services:
            raise BadInput(f"{self.shown}:{self.where.line('services')}: no services: in this Compose file",
                           fix="pass the docker-compose.yml that defines the stack's services (a Compose file "
                               "has a top-level services: mapping)")
        self.doc, self.services = doc, services
        top_vols = doc.get("volumes") if isinstance(doc.get("volumes"), Mapping) else {}
        self.named_volumes = {str(k) for k in top_vols}
        self.project, self.project_source = self._project(doc)
        pg = self._find_postgres()
        self.pg_name = pg
        self.pg_hosts = self._hosts(pg)
        self.names = self._service_names(pg)
        pg_info = self._postgres(pg)
        conns = {name: self._connections(name) for name in self.names}
        databases = self._databases(pg_info, conns)
        services_out = {self.names[c]: self._service(c, conns[c], databases) for c in self.names}
        volumes = self._volumes(top_vols)
        for d in databases.values():
            if d.get("password_secret"):
                for var, n in self.secret_vars.items():
                    if n == d["password_secret"] and var not in self.env_all:
                        self._unset(var, d.get("_line"))
        self._note_unset()
        data = self._manifest(pg_info, databases, services_out, volumes)
        text = self._render(data)
        plain = _plain(YAML(typ="safe").load(text))
        allowed = {self.project, plain["name"], *databases, *services_out, *self.names,
                   *(u for d in databases.values() for u in d["users"]), pg_info.get("user") or ""}
        self._check_no_secret(text, plain, allowed)
        self._validate(plain)
        return ImportResult(
            compose_file=self.path, project=self.project, stack_name=plain["name"], text=text, data=plain,
            postgres={k: v for k, v in pg_info.items() if not k.startswith("_")},
            databases={n: {k: v for k, v in d.items() if not k.startswith("_")} for n, d in databases.items()},
            services={n: {k: v for k, v in s.items() if not k.startswith("_")} for n, s in services_out.items()},
            secrets={n: s["env"] for n, s in self.secrets.items()}, not_inferred=self.items)

    # -- project
    def _project(self, doc: Mapping) -> tuple[str, str]:
        if self.project_arg:
            return self.project_arg, "--project"
        if doc.get("name"):
            r = self.interp.resolve(doc["name"])
            if r.known():
                return r.text, f"name: ({self.display}:{self.where.line('name')})"
        if self.env_all.get("COMPOSE_PROJECT_NAME"):
            return self.env_all["COMPOSE_PROJECT_NAME"], "COMPOSE_PROJECT_NAME"
        base = re.sub(r"[^a-z0-9_-]", "", self.path.parent.name.lower())
        return base or "stack", "the directory name"

    # -- postgres
    def _find_postgres(self) -> str:
        by_image, by_env = [], []
        for name, svc in self.services.items():
            if not isinstance(svc, Mapping):
                continue
            img = svc.get("image")
            if img is not None and PG_REPOS.match(Image.parse(self.interp.resolve(img).text).short):
                by_image.append(str(name))
                continue
            keys = {k for k, _, _ in _env_items(svc.get("environment"))}
            connects = any(k.endswith(("_HOST", "_URL", "_URI")) for k in keys)
            mounts_pg = any(str(v).split(":")[1:2] and str(v).split(":")[1].startswith(PG_DATA_TARGETS)
                            for v in (svc.get("volumes") or []) if isinstance(v, str))
            if (keys & set(PG_ENV) and not connects) or mounts_pg:
                by_env.append(str(name))
        found = by_image or by_env
        if not found:
            raise BadInput(f"{self.shown}:{self.where.line('services')}: no PostgreSQL service found (by image: "
                           "postgres, pgvector/pgvector, ankane/pgvector, timescale/…, supabase/postgres, "
                           "bitnami/postgresql; or by POSTGRES_* env)",
                           fix="the stack's database must be a service of this Compose file: add it, or pass "
                               "the file that has it")
        for other in found[1:]:
            self.note(other, f"a second PostgreSQL service (the import manages {found[0]!r} only; {other!r} is "
                             "left out of the manifest)", self.where.line("services", other), "compose.postgres.service",
                      f"name the stack's cluster in compose.postgres.service, or split {other!r} into its own stack")
        self.extra_pg = set(found[1:])
        return found[0]

    def _hosts(self, pg: str) -> set[str]:
        svc = self.services[pg]
        hosts = {pg}
        for k in ("hostname", "container_name"):
            if svc.get(k):
                hosts.add(self.interp.resolve(svc[k]).text)
        nets = svc.get("networks")
        if isinstance(nets, Mapping):
            for n in nets.values():
                if isinstance(n, Mapping):
                    hosts |= {str(a) for a in n.get("aliases") or []}
        return hosts

    def _service_names(self, pg: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, svc in self.services.items():
            name = str(name)
            if name == pg or name in self.extra_pg or not isinstance(svc, Mapping):
                continue
            out[name] = sanitize(name, set(out.values()))
        if not out:
            raise BadInput(f"{self.shown}:{self.where.line('services')}: only PostgreSQL ({pg!r}) is defined: "
                           "there is no application service to manage",
                           fix="pass the Compose file with the apps that use the database")
        return out

    def _env(self, cname: str) -> tuple[dict[str, Resolved], dict[str, tuple[int | None, str]]]:
        """The service's environment: env_file(s) then environment:. Also where each key is written."""
        svc = self.services[cname]
        env: dict[str, Resolved] = {}
        where: dict[str, tuple[int | None, str]] = {}
        for shown, p in _env_files(svc, self.path.parent):
            values = read_dotenv(p)
            for k, v in values.items():
                r = Resolved(v, v)
                if _looks_secret(k):
                    self.secret_values.add(v)
                    r = Resolved(v, "\ue0000\ue001", [k], {"\ue0000\ue001": k})
                env[k] = r
                where[k] = (self.where.line("services", cname, "env_file"), f"env_file {shown}")
        for k, raw, idx in _env_items(svc.get("environment")):
            r = self.interp.resolve(f"${{{k}}}" if raw is None else raw)
            env[k] = r
            loc = ("services", cname, "environment", idx if idx is not None else k)
            where[k] = (self.where.line(*loc), "environment")
            if raw is not None and _looks_secret(k) and not r.refs:
                self.secret_values.add(str(raw))
        return env, where

    def _postgres(self, pg: str) -> dict[str, Any]:
        svc = self.services[pg]
        line = self.where.line("services", pg)
        info: dict[str, Any] = {"service": pg, "image": None, "major": None, "volume": None, "user": None,
                                "password_secret": None, "healthcheck": bool(svc.get("healthcheck")),
                                "database": None}
        img = svc.get("image")
        if img is None:
            self.note(pg, "PostgreSQL is built, not pulled (build:): its major is unknown", line, "postgres.major",
                      "set postgres.major and compose.postgres.image")
        else:
            r = self.interp.resolve(img)
            info["image"] = r.text if r.known() else str(img)
            image = Image.parse(r.text)
            major = pg_major(image) if r.known(image.tag or "") else None
            if major is not None and not 10 <= major <= 30:
                self.note(pg, f"PostgreSQL {major} is older than the tool supports (10+)",
                          self.where.line("services", pg, "image"), "postgres.major",
                          "upgrade the cluster to a supported major first")
                major = None
            elif major is None:
                self.note(pg, f"no PostgreSQL major in the image tag {image.tag or '(none)'!r}",
                          self.where.line("services", pg, "image"), "postgres.major",
                          "set postgres.major to the cluster's major (SELECT version()), and pin the tag")
            info["major"] = major
        env, where = self._env(pg)
        pgdata = env["PGDATA"].value() if "PGDATA" in env else None
        mounts = _mounts(svc.get("volumes"), self.interp, self.named_volumes)
        for m in mounts:
            is_data = (pgdata and (pgdata == m.target or pgdata.startswith(m.target.rstrip("/") + "/"))) \
                or m.target.rstrip("/").startswith(PG_DATA_TARGETS)
            mline = self.where.line("services", pg, "volumes", m.index)
            if is_data and m.kind == "volume":
                info["volume"] = m.source
            elif is_data:
                self.note(pg, f"the PostgreSQL data is in a {m.kind} mount ({m.source or m.target} -> {m.target}), "
                              "not a named volume: the Compose backend cannot stage or upgrade it side by side",
                          mline, "compose.postgres.volume",
                          f"move the data into a named volume (volumes: [pgdata:{m.target}]) and set "
                          "compose.postgres.volume")
            elif m.kind == "bind":
                self._bind(pg, m, mline, "compose.postgres")
        if info["volume"] is None and not any(m.target.rstrip("/").startswith(PG_DATA_TARGETS) for m in mounts):
            self.note(pg, "no volume for the PostgreSQL data: it lives in the container and is lost when the "
                          "container is recreated", line, "compose.postgres.volume",
                      "mount a named volume at /var/lib/postgresql/data and set compose.postgres.volume")
        user = env.get("POSTGRES_USER") or env.get("POSTGRESQL_USERNAME")
        if user is None:
            info["user"] = "postgres"
        elif user.known():
            info["user"] = user.text
        else:
            self.note(pg, f"the superuser comes from ${{{user.refs[0]}}}, not set here",
                      where.get("POSTGRES_USER", (line, ""))[0], "compose.postgres.user",
                      f"set {user.refs[0]} in .env, or write the role in compose.postgres.user")
        pw_key = next((k for k in ("POSTGRES_PASSWORD", "POSTGRESQL_PASSWORD") if k in env), None)
        if pw_key:
            info["password_secret"] = self._secret_of(pg, pw_key, env[pw_key], where[pw_key][0])
        elif "POSTGRES_PASSWORD_FILE" in env:
            self.note(pg, "the superuser password comes from a file (POSTGRES_PASSWORD_FILE)",
                      where["POSTGRES_PASSWORD_FILE"][0], "secrets.postgres_password.file",
                      "declare secrets.postgres_password with file: (the host path of that file)")
        db = env.get("POSTGRES_DB") or env.get("POSTGRESQL_DATABASE")
        if db is not None:
            info["database"] = db.text if db.known() else None
            info["_db_ref"] = db.refs[0] if db.refs else None
            info["_db_line"] = where.get("POSTGRES_DB", where.get("POSTGRESQL_DATABASE", (line, "")))[0]
        return info

    def _secret_of(self, cname: str, key: str, r: Resolved, line: int | None) -> str:
        """A secrets: entry for a value: the variable it references, else the key (the value is never kept)."""
        if r.refs:
            name = self.secret_for(r.refs[0], f"{self.display}:{line}")
            if r.refs[0] not in self.env_all:
                self._unset(r.refs[0], line)
            return name
        self.secret_values.add(r.raw)
        name = self.secret_for(key, f"{self.display}:{line}")
        self.note(cname, f"{key} is written in the Compose file (the import does not copy it)", line,
                  f"secrets.{name}.env", f"move the value to .env or the environment as {key} "
                                         f"(secrets.{name} reads ${key})")
        return name

    def _bind(self, cname: str, m: _Mount, line: int | None, key: str) -> None:
        what = "read-only " if m.read_only else ""
        self.note(cname, f"{what}bind mount {m.source} -> {m.target}: data outside named volumes is not captured "
                         "by restore points", line, f"{key}.volumes",
                  "fine for configuration; for data, use a named volume")

    # -- connections
    def _connections(self, cname: str) -> list[_Conn]:
        env, where = self._env(cname)
        self._envs = getattr(self, "_envs", {})
        self._envs[cname] = (env, where)
        out: list[_Conn] = []
        used: set[str] = set()
        for key, r in env.items():  # URLs
            u = _split_url(r.text)
            if u is None:
                continue
            scheme, user, pw, host, port, name, query = u
            pw_ref = None
            if pw is not None:
                if not r.known(pw):
                    pw_ref = _first_ref(r, pw)
                else:
                    self.secret_values.add(unquote(pw))
            out.append(_Conn(cname, key, {key: "url"}, host if host and r.known(host) else None,
                             int(port) if port and port.isdigit() else None,
                             name if name and r.known(name) else None, _first_ref(r, name) if name else None,
                             user if user and r.known(user) else None, pw_ref, pw is not None and not pw_ref,
                             scheme, query, key))
            used.add(key)
        groups: list[tuple[str, dict[str, str]]] = list(_GROUPS)
        for key in env:  # generic <P>_DATABASE with <P>_HOST, <P>_PORT, <P>_USER(NAME), <P>_PASSWORD
            m = _NAME_SUFFIX.match(key)
            if m and not any(key in g for _, g in groups):
                p = m.group("p")
                pre = f"{p}_" if p else ""
                user_key = f"{pre}USERNAME" if f"{pre}USERNAME" in env else f"{pre}USER"
                groups.append((key, {key: "name", f"{pre}HOST": "host", f"{pre}PORT": "port", user_key: "user",
                                     f"{pre}PASSWORD": "password"}))
        for label, g in groups:
            name_key = next(k for k, part in g.items() if part == "name")
            if name_key not in env or name_key in used:
                continue
            host_key = next((k for k, part in g.items() if part == "host"), None)
            host_r = env.get(host_key) if host_key else None
            host = host_r.value() if host_r else None
            prefix = name_key.rsplit("_", 1)[0]
            typ = next((env[k].text.lower() for k in (f"{prefix}_TYPE", "DB_TYPE", "DATABASE_TYPE", "DB_CLIENT")
                        if k in env), "")
            pgish = bool(re.search(r"PG|POSTGRES", name_key)) or "postgres" in typ or "pg" == typ
            if typ and "postgres" not in typ and typ not in ("pg", "postgresql"):
                continue  # e.g. DB_TYPE=sqlite, DATABASE_TYPE=mysql
            if not (pgish or (host and host in self.pg_hosts)):
                continue  # CLICKHOUSE_DATABASE and friends
            parts = {k: part for k, part in g.items() if k in env}
            nr = env[name_key]
            pw_key = next((k for k, part in parts.items() if part == "password"), None)
            user_key = next((k for k, part in parts.items() if part == "user"), None)
            port_key = next((k for k, part in parts.items() if part == "port"), None)
            pw_ref = None
            if pw_key:
                pr = env[pw_key]
                pw_ref = pr.refs[0] if pr.refs else None
                if not pr.refs:
                    self.secret_values.add(pr.raw)
            port_v = env[port_key].value() if port_key else None
            out.append(_Conn(cname, label if label != name_key else name_key, parts, host,
                             int(port_v) if port_v and port_v.isdigit() else None,
                             nr.value(), nr.refs[0] if nr.refs and not nr.known() else None,
                             env[user_key].value() if user_key else None, pw_ref,
                             bool(pw_key and not env[pw_key].refs), None, "", name_key))
            used |= set(parts)
        if "DB_POSTGRESDB_DATABASE" not in env and "postgres" in (env.get("DB_TYPE") or Resolved("", "")).text:
            parts = {k: part for k, part in _GROUPS[0][1].items() if k in env}  # n8n's default database: n8n
            pr = env.get("DB_POSTGRESDB_PASSWORD")
            out.append(_Conn(cname, "n8n DB_TYPE=postgresdb (default database n8n)", parts,
                             env["DB_POSTGRESDB_HOST"].value() if "DB_POSTGRESDB_HOST" in env else None, None, "n8n",
                             None, env["DB_POSTGRESDB_USER"].value() if "DB_POSTGRESDB_USER" in env else None,
                             pr.refs[0] if pr and pr.refs else None, bool(pr and not pr.refs), None, "", "DB_TYPE"))
        return out

    def _databases(self, pg: dict[str, Any], conns: dict[str, list[_Conn]]) -> dict[str, dict[str, Any]]:
        dbs: dict[str, dict[str, Any]] = {}
        for cname, cs in conns.items():
            for c in cs:
                env, where = self._envs[cname]
                line = where.get(c.line_key, (self.where.line("services", cname), ""))[0]
                if c.host and c.host not in self.pg_hosts and c.host not in ("localhost", "127.0.0.1"):
                    self.note(cname, f"{c.via} points at {c.host!r}, not at the PostgreSQL service "
                                     f"{self.pg_name!r}: an external database is not managed", line,
                              f"services.{self.names[cname]}.env",
                              "leave it, or move the database into the stack's PostgreSQL service")
                    c.name = "\x00external"
                    continue
                db_name = c.name
                if db_name is None:
                    ref = c.name_ref
                    if ref and ref == pg.get("_db_ref") and pg.get("database"):
                        db_name = pg["database"]
                    else:
                        db_name = sanitize(ref or self.names[cname])
                        self.note(cname, f"the database name comes from ${{{ref}}}, not set here" if ref else
                                  f"{c.via}: no database name", line, f"postgres.databases.{db_name}",
                                  f"set {ref} in .env, or rename postgres.databases.{db_name} to the real name"
                                  if ref else f"rename postgres.databases.{db_name} to the real database name")
                key = sanitize(db_name)
                if key != db_name:
                    self.note(cname, f"database {db_name!r} is not a valid manifest name; written as {key!r}", line,
                              f"postgres.databases.{key}", "keep it, or rename the database")
                c.name = key
                d = dbs.setdefault(key, {"name": db_name, "owner": self.names[cname], "users": [],
                                         "found_in": [], "_line": line})
                d["found_in"].append(f"{cname}: {c.via} ({self.display}:{line})")
                if d["owner"] != self.names[cname] and not d.get("_shared"):
                    d["_shared"] = True
                    self.note(cname, f"database {key!r} is used by {d['owner']!r} and {self.names[cname]!r}: its "
                                     f"owner (the service that migrates it) is set to {d['owner']!r}", line,
                              f"postgres.databases.{key}.owner", "name the service that migrates its schema")
                if c.user and c.user not in d["users"]:
                    d["users"].append(c.user)
                if c.password_ref or c.literal_password:
                    pwk = next((k for k, p in c.keys.items() if p in ("password", "url")), c.line_key)
                    d["password_secret"] = d.get("password_secret") or (
                        self.secret_for(c.password_ref, f"{self.display}:{line}") if c.password_ref
                        else self._literal_db_password(cname, pwk, key, line))
        if pg.get("database") or pg.get("_db_ref"):
            name = pg["database"] or sanitize(pg["_db_ref"])
            key = sanitize(name)
            if key not in dbs:
                first = next(iter(self.names.values()))
                if pg["database"] is None:
                    self.note(self.pg_name, f"POSTGRES_DB comes from ${{{pg['_db_ref']}}}, not set here",
                              pg["_db_line"], f"postgres.databases.{key}",
                              f"set {pg['_db_ref']} in .env, or rename postgres.databases.{key}")
                self.note(self.pg_name, f"database {name!r} (POSTGRES_DB) is not used by any service's settings: "
                                        f"owner guessed as {first!r}", pg["_db_line"],
                          f"postgres.databases.{key}.owner", "name the service that migrates it, or remove it")
                dbs[key] = {"name": name, "owner": first, "users": [], "found_in": [], "_line": pg["_db_line"]}
            dbs[key]["found_in"].insert(0, f"{self.pg_name}: POSTGRES_DB ({self.display}:{pg['_db_line']})")
        if not dbs:
            first = next(iter(self.names.values()))
            self.note(None, "no database found (no POSTGRES_DB, no connection settings in the services)",
                      self.where.line("services", self.pg_name), f"postgres.databases.{first}",
                      "name the databases and their owners under postgres.databases")
            dbs[first] = {"name": first, "owner": first, "users": [], "found_in": [], "_guess": True}
        return dbs

    def _literal_db_password(self, cname: str, key: str, db: str, line: int | None) -> str:
        name = self.secret_for(f"{db.upper().replace('-', '_')}_DB_PASSWORD", f"{self.display}:{line}")
        self.note(cname, f"the password of database {db!r} is written in the Compose file ({key}; not copied)",
                  line, f"secrets.{name}.env",
                  f"put it in .env or the environment as {self.secrets[name]['env']}")
        return name

    # -- services
    def _service(self, cname: str, conns: list[_Conn], dbs: dict[str, dict[str, Any]]) -> dict[str, Any]:
        svc = self.services[cname]
        name = self.names[cname]
        line = self.where.line("services", cname)
        out: dict[str, Any] = {"service": cname, "_line": line}
        # image and version
        img = svc.get("image")
        if img is None:
            out.update(image=None, version="local", build=True)
            self.note(cname, "built from source (build:), no image to version", line, f"compose.services.{name}.image",
                      f"push the image and set compose.services.{name}.image with {{version}}")
        else:
            r = self.interp.resolve(img)
            im = Image.parse(r.text)
            iline = self.where.line("services", cname, "image")
            out["digests"] = {}
            if not r.known(im.repository):
                out["image"] = _escape(str(img))
                out["version"] = "unknown"
                self.note(cname, f"the image repository comes from a variable ({img})", iline,
                          f"compose.services.{name}.image", "write the repository with {version} for the tag")
            elif im.tag is None and im.digest:
                version = "sha256-" + im.digest.split(":")[-1][:12]
                out.update(image=f"{im.repository}@{{digest}}", version=version)
                out["digests"] = {version: im.digest}
                self.note(cname, "pinned by digest only: the version is named after the digest", iline,
                          f"services.{name}.versions", "name the version (the release this digest is), keep the digest")
            else:
                tag = im.tag or "latest"
                if not r.known(tag):
                    var = next((r.opaque[m] for m in r.opaque if m in tag), None)
                    self.note(cname, f"the tag comes from ${{{var}}}, not set here", iline,
                              f"services.{name}.versions", f"set {var} in .env, or write the version")
                    tag = "unknown"
                elif not re.fullmatch(VERSION[1:-1], tag):
                    self.note(cname, f"tag {tag!r} is not a valid manifest version", iline, f"services.{name}.versions",
                              "write the version by hand")
                    tag = re.sub(r"[^A-Za-z0-9._+~-]", "-", tag)[:64] or "unknown"
                elif tag in MOVING_TAGS or tag.split("-")[0] in MOVING_TAGS:
                    self.note(cname, f"tag {tag!r} moves: the version is not pinned (a restore point records the "
                                     "image ID, an upgrade needs a target)", iline, f"services.{name}.versions",
                              "pin a release tag in the Compose file and here")
                out["image"] = f"{im.repository}:{{version}}" + ("@{digest}" if im.digest else "")
                out["version"] = tag
                if im.digest:
                    out["digests"] = {tag: im.digest}
        # volumes
        vols: dict[str, str] = {}
        for m in _mounts(svc.get("volumes"), self.interp, self.named_volumes):
            mline = self.where.line("services", cname, "volumes", m.index)
            if m.kind == "volume" and m.source:
                vols[m.source] = m.target
            elif m.kind == "bind":
                self._bind(cname, m, mline, f"compose.services.{name}")
            elif m.kind == "anonymous":
                self.note(cname, f"anonymous volume at {m.target}: not captured by restore points, and a new one "
                                 "comes with every recreated container", mline, f"compose.services.{name}.volumes",
                          f"give it a name (volumes: [{name}-data:{m.target}])")
        out["volumes"] = vols
        # ports
        ports = _ports(svc.get("ports"), self.interp)
        out["ports"] = [p for p, _, _ in ports]
        out["container_port"] = next((c for _, c, _ in ports if c), None)
        # health
        out["health"], out["healthcheck"] = self._health(cname, name, svc, line, out)
        # depends_on
        deps = []
        for d in _depends(svc.get("depends_on")):
            if d in self.names:
                deps.append(self.names[d])
        out["depends_on"] = deps
        # env
        out["env"], out["env_file"] = self._service_env(cname, name, conns, dbs), [
            shown for shown, _ in _env_files(svc, self.path.parent)]
        if svc.get("container_name"):
            self.note(cname, f"container_name {svc['container_name']!r} fixes the container's name: a staging "
                             "copy (a second project) cannot run beside it",
                      self.where.line("services", cname, "container_name"), None,
                      f"remove container_name from {self.display}")
        if str(svc.get("network_mode", "")).startswith("host"):
            self.note(cname, "network_mode: host: a staging copy would share production's ports and network",
                      self.where.line("services", cname, "network_mode"), None,
                      f"publish ports instead of network_mode: host in {self.display}")
        if svc.get("command") is not None:
            cmd = svc["command"]
            out["command"] = _escape(shlex.join(map(str, cmd)) if isinstance(cmd, list) else str(cmd))
        return out

    def _health(self, cname: str, name: str, svc: Mapping, line: int | None,
                out: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        hc = svc.get("healthcheck")
        disabled = isinstance(hc, Mapping) and (hc.get("disable") or _cmd_text(hc.get("test")).strip() == "NONE")
        if isinstance(hc, Mapping) and hc.get("test") is not None and not disabled:
            r = self.interp.resolve(_cmd_text(hc["test"]))
            text = r.text
            m = _URL_IN_CMD.search(text)
            if m and (re.search(r"\b(curl|wget)\b", text) or "localhost" in m.group(0) or "127.0.0.1" in m.group(0)):
                path = m.group(2) or "/"
                if m.group(1) and m.group(1).isdigit():
                    out["container_port"] = int(m.group(1))
                if r.known(path):
                    return {"http": _escape(path)}, True
            if r.known():
                return {"command": _escape(text)}, True
            return {"command": _escape(_cmd_text(hc["test"]))}, True
        hline = self.where.line("services", cname, "healthcheck") if hc else line
        what = "healthcheck disabled" if disabled else "no healthcheck"
        if out.get("container_port") or out.get("ports"):
            self.note(cname, what, hline, f"services.{name}.health.http",
                      f"add services.{name}.health.http (the app's health path; '/' is a placeholder)")
        else:
            self.note(cname, f"{what} and no port", hline, f"services.{name}.health",
                      f"add services.{name}.health.command (or .http) that tells it is working")
        return {"http": "/"}, False

    def _service_env(self, cname: str, name: str, conns: list[_Conn], dbs: dict[str, dict[str, Any]]) -> dict:
        env, where = self._envs[cname]
        out: dict[str, str] = {}
        by_key: dict[str, tuple[_Conn, str]] = {}
        for c in conns:
            if c.name and c.name != "\x00external":
                for k, part in c.keys.items():
                    by_key[k] = (c, part)
        explicit = {k for k, _, _ in _env_items(self.services[cname].get("environment"))}
        for key, r in env.items():
            line, origin = where[key]
            if key in by_key:
                c, part = by_key[key]
                out[key] = _db_template(c, part)
                continue
            if key not in explicit:
                continue  # from an env_file: the Compose backend passes the file itself
            if not r.refs and _looks_secret(key):
                out[key] = _ref("secrets", self._secret_of(cname, key, r, line))
            elif not r.refs and re.search(r"://[^/@\s]*:[^@/\s]+@", r.raw):
                out[key] = _ref("secrets", self._secret_of(cname, key, r, line))
            elif r.refs:
                out[key] = self._template(r, line)
            else:
                out[key] = _escape(r.raw)
        return out

    def _template(self, r: Resolved, line: int | None) -> str:
        """The raw value with each ${VAR} reference turned into {secrets.var} (the variable's value stays out)."""
        out, i, s = [], 0, r.raw
        while i < len(s):
            if s.startswith("$$", i):
                out.append("$")
                i += 2
            elif s.startswith("${", i):
                j = _closing(s, i + 1)
                if j < 0:
                    out.append(_escape(s[i:]))
                    break
                var = re.match(r"[A-Za-z_][A-Za-z0-9_]*", s[i + 2:j])
                if var:
                    out.append(_ref("secrets", self.secret_for(var.group(), f"{self.display}:{line}")))
                    if var.group() not in self.env_all:
                        self._unset(var.group(), line)
                else:
                    out.append(_escape(s[i:j + 1]))
                i = j + 1
            elif s[i] == "$" and (m := _VAR.match(s, i + 1)):
                out.append(_ref("secrets", self.secret_for(m.group(), f"{self.display}:{line}")))
                if m.group() not in self.env_all:
                    self._unset(m.group(), line)
                i = m.end()
            else:
                out.append(_escape(s[i]))
                i += 1
        return "".join(out)

    def _unset(self, var: str, line: int | None) -> None:
        self.unset_vars.setdefault(var, line)

    def _note_unset(self) -> None:
        """One line per variable the Compose file references but neither .env nor the environment sets."""
        for var, line in self.unset_vars.items():
            name = self.secret_vars[var]
            self.note(None, f"${var} is referenced but not set in .env or the environment", line,
                      f"secrets.{name}.env", f"export {var} where the tool runs (Compose used its default or an "
                                             "empty value), or remove secrets.{name} and its uses".replace(
                                                 "{name}", name))

    # -- volumes, manifest, output
    def _volumes(self, top: Mapping) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for k, v in (top or {}).items():
            v = v if isinstance(v, Mapping) else {}
            raw_ext = v.get("external")
            ext = bool(raw_ext)
            real = v.get("name") or (raw_ext.get("name") if isinstance(raw_ext, Mapping) else None)
            real = self.interp.resolve(real).text if real else None
            out[str(k)] = {"name": real or (str(k) if ext else f"{self.project}_{k}"), "external": ext}
        return out

    def _manifest(self, pg: dict, dbs: dict, svcs: dict, volumes: dict) -> CommentedMap:
        cm = CommentedMap()
        stack = sanitize(self.project)
        cm["version"] = 1
        cm["name"] = stack
        postgres = CommentedMap()
        if pg["major"] is not None:
            postgres["major"] = pg["major"]
        databases = CommentedMap()
        for k, d in dbs.items():
            databases[k] = _flow({"owner": d["owner"]})
            if d.get("_guess") or any(n.key and n.key.startswith(f"postgres.databases.{k}") for n in self.items):
                databases.yaml_add_eol_comment(f"{TODO}: see the list printed by the import", k)
        postgres["databases"] = databases
        cm["postgres"] = postgres
        if pg["major"] is None:
            cm.yaml_add_eol_comment(f"{TODO}: set postgres.major", "postgres")
        if self.secrets:
            secrets = CommentedMap()
            for n, s in self.secrets.items():
                secrets[n] = _flow({"env": s["env"], "staging": "same"})
                secrets.yaml_add_eol_comment(s["from"], n)
            cm["secrets"] = secrets
        services = CommentedMap()
        versions = CommentedMap()
        for i, (n, s) in enumerate(svcs.items(), 1):
            e = CommentedMap()
            e["port"] = i
            e["command"] = s.get("command", "")
            if "command" not in s:
                e.yaml_add_eol_comment("the image's own command (compose backend)", "command")
            if s["env"]:
                env = CommentedMap()
                for k, v in s["env"].items():
                    env[k] = v
                e["env"] = env
            e["versions"] = CommentedMap({s["version"]: CommentedMap()})
            if s["depends_on"]:
                e["depends_on"] = _flow_seq(s["depends_on"])
            e["health"] = _flow(s["health"])
            if not s["healthcheck"]:
                e.yaml_add_eol_comment(f"{TODO}: no healthcheck in the Compose file", "health")
            if not s["volumes"]:
                e["data_dir"] = False
            services[n] = e
            versions[n] = s["version"]
        cm["services"] = services
        envs = CommentedMap()
        prod = CommentedMap()
        prod["backend"] = "compose"
        prod["port_base"] = PORT_BASE
        prod["versions"] = _flow(dict(versions))
        envs["production"] = prod
        cm["environments"] = envs
        comp = CommentedMap()
        comp["file"] = os.path.relpath(self.path, self.stack_dir)
        comp["project"] = self.project
        comp.yaml_add_eol_comment(f"from {self.project_source}; volumes are <project>_<volume>: a rename starts "
                                  "on new, empty volumes", "project")
        cpg = CommentedMap()
        for k in ("service", "image", "volume", "user", "password_secret", "healthcheck"):
            cpg[k] = pg[k]
        comp["postgres"] = cpg
        dbx = {k: {x: d[x] for x in ("users", "password_secret") if d.get(x)} for k, d in dbs.items()}
        if any(dbx.values()):
            cdb = CommentedMap()
            for k, v in dbx.items():
                if v:
                    cdb[k] = _flow(v)
            comp["databases"] = cdb
        csv = CommentedMap()
        for n, s in svcs.items():
            c = CommentedMap()
            c["service"] = s["service"]
            c["image"] = s["image"]
            if s.get("digests"):
                c["digests"] = _flow(s["digests"])
            if s.get("build"):
                c["build"] = True
            if s["volumes"]:
                c["volumes"] = _flow(s["volumes"])
            if s["ports"]:
                # quoted: unquoted 80:80 is a base-60 number in YAML 1.1
                c["ports"] = _flow_seq([DoubleQuotedScalarString(x) for x in s["ports"]])
            c["container_port"] = s["container_port"]
            c["healthcheck"] = s["healthcheck"]
            if s["env_file"]:
                c["env_file"] = _flow_seq(s["env_file"])
            csv[n] = c
        comp["services"] = csv
        if volumes:
            cv = CommentedMap()
            for k, v in volumes.items():
                cv[k] = _flow(v)
            comp["volumes"] = cv
        cm[COMPOSE_KEY] = comp
        cm.yaml_set_comment_before_after_key(
            COMPOSE_KEY, before="\nWhat only the Compose backend needs")
        cm.yaml_set_start_comment(
            f"Written by `upgrade-infra import compose {self.display}` from {self.display}.\n"
            f"Review every {TODO} line (the import prints them with the Compose line). Secrets are read from\n"
            "the environment variables named under secrets:, never stored here.")
        return cm

    def _render(self, data: CommentedMap) -> str:
        y = YAML(typ="rt")
        y.width = 4096
        y.indent(mapping=2, sequence=4, offset=2)
        buf = io.StringIO()
        y.dump(data, buf)
        return buf.getvalue()

    def _check_no_secret(self, text: str, plain: Any, allowed: set[str]) -> None:
        """No secret value in the output: none equal to a value written, none (8+ characters, not a plain word)
        inside the text. Values also used as a name (a database called like its password) are allowed."""
        scalars: set[str] = set()

        def walk(o: Any) -> None:
            if isinstance(o, Mapping):
                for k, v in o.items():
                    scalars.add(str(k))
                    walk(v)
            elif isinstance(o, list):
                for v in o:
                    walk(v)
            elif o is not None:
                scalars.add(str(o))

        walk(plain)
        for v in self.secret_values:
            if not v or v in allowed:
                continue
            if v in scalars or (len(v) >= 8 and not re.fullmatch(r"[a-z_]+", v) and v in text):
                raise BadInput(f"refusing to write the stack.yaml from {self.display}: a secret value would "
                               "appear in it", fix="report this; meanwhile write the stack.yaml by hand from "
                                                   "docs/reference/stack.reference.yaml")

    def _validate(self, plain: dict) -> None:
        rest = plain  # the compose: section is part of the manifest schema (the compose backend reads it)
        with tempfile.TemporaryDirectory(prefix="import-compose-") as d:
            p = Path(d) / "stack.yaml"
            buf = io.StringIO()
            YAML(typ="safe", pure=True).dump(rest, buf)
            p.write_text(buf.getvalue())
            try:
                load_manifest(p)
            except ManifestError as e:
                raise BadInput(f"the stack.yaml written from {self.display} does not validate: "
                               f"{str(e.issues[0]).replace(str(p), 'stack.yaml')}",
                               fix="report this with the Compose file; the import must not write an invalid "
                                   "manifest") from None


def _split_url(text: str) -> tuple | None:
    """(scheme, user, password, host, port, database, query) of a PostgreSQL URL, else None. Done by hand:
    parts may hold markers (values not known here), which urllib would refuse as a port."""
    if "://" not in text:
        return None
    scheme, rest = text.split("://", 1)
    if not URL_SCHEMES.match(scheme.lower()):
        return None
    netloc, _, pathq = rest.partition("/")
    path, _, query = pathq.partition("?")
    userinfo, at, hostport = netloc.rpartition("@")
    user, colon, pw = userinfo.partition(":")
    host, _, port = hostport.rpartition(":") if hostport.count(":") == 1 else (hostport, "", "")
    return (scheme.lower(), unquote(user) or None, (unquote(pw) if colon else None) if at else None,
            unquote(host) or None, port or None, unquote(path) or None, query)


def _first_ref(r: Resolved, part: str) -> str | None:
    m = _MARK.search(part)
    return r.opaque.get(m.group(0)) if m else None


def _ref(*parts: str) -> str:
    """A manifest placeholder: ``_ref("db", "n8n", "url")`` -> ``{db.n8n.url}``."""
    return "{" + ".".join(parts) + "}"


def _db_template(c: _Conn, part: str) -> str:
    db = c.name
    if part != "url":
        return _ref("db", db, part)
    if c.scheme in ("postgresql", "postgres") and not c.query:
        return _ref("db", db, "url")
    q = f"?{_escape(c.query)}" if c.query else ""
    return (f"{c.scheme}://{{db.{db}.user}}:{{db.{db}.password}}@{{db.{db}.host}}:{{db.{db}.port}}"
            f"/{{db.{db}.name}}{q}")


def _flow(d: Mapping) -> CommentedMap:
    m = CommentedMap(d)
    m.fa.set_flow_style()
    return m


def _flow_seq(items: list) -> CommentedSeq:
    s = CommentedSeq(items)
    s.fa.set_flow_style()
    return s


def _plain(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj


# -- API ----------------------------------------------------------------------------------------------
def import_compose(path: str | Path, *, project: str | None = None, stack_dir: str | Path | None = None,
                   environ: Mapping[str, str] | None = None) -> ImportResult:
    """Read a Compose file and return the ``stack.yaml`` for it (nothing is written).

    ``project``: the Compose project name (default: the file's ``name:``, ``COMPOSE_PROJECT_NAME`` or the
    directory's name, as Compose does); ``stack_dir``: where the stack.yaml will live (``compose.file`` is
    written relative to it; default the Compose file's directory); ``environ``: the process environment
    (default ``os.environ``), which wins over the ``.env`` beside the file.
    """
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"{path}: no such Compose file", fix="pass the path of docker-compose.yml (or compose.yaml)")
    if project is not None and not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", project):
        raise BadInput(f"--project {project!r} is not a valid Compose project name",
                       fix="use lowercase letters, digits, '-' or '_', starting with a letter or digit")
    p = p.resolve()
    base = Path(stack_dir).resolve() if stack_dir else p.parent
    return _Importer(p, project, base, os.environ if environ is None else environ, str(path)).run()


def write_stack(result: ImportResult, out: str | Path, *, force: bool = False) -> Path:
    """Write the stack.yaml; an existing file is kept unless ``force`` (BadInput, exit 2)."""
    o = Path(out)
    if o.exists() and not force:
        raise BadInput(f"{o} exists: not overwritten", fix="pass --force to replace it, or -o another path")
    o.parent.mkdir(parents=True, exist_ok=True)
    tmp = o.with_name(f".{o.name}.tmp-{os.getpid()}")
    tmp.write_text(result.text)
    os.replace(tmp, o)
    return o

