"""Local images for the Compose backend, built without any registry: cached and idempotent.

No registry can be reached here, so every image is built locally:

- ``upgrade-infra/debian:bookworm``: ``debootstrap --variant=minbase`` (with python3) from the machine's
  Debian mirror, ``docker import``-ed. The root filesystem tarball is cached under
  ``~/.cache/upgrade-infra/images/`` (``$XDG_CACHE_HOME``), so a rebuild skips debootstrap.
- ``upgrade-infra/postgres:15``: Debian's ``postgresql-15`` plus pgvector.
- ``upgrade-infra/postgres:16``: bookworm has no PostgreSQL 16 (nor bookworm-backports), so the image
  carries the PostgreSQL 16.2 build of the ``pgserver`` wheel (extra ``pg16``; no contrib modules).
- pgvector is the same version in both (label ``org.upgrade-infra.pgvector``; the major-upgrade extension
  check compares them): Debian ships none for bookworm, so trixie's ``pgvector`` source package (0.8.0) is
  compiled in a throw-away build image against postgresql-15 and against the headers/PGXS the pgserver wheel
  ships (replacing the wheel's own pgvector 0.6.2). The compiled files are cached as a tarball in the cache
  dir, so later builds (a new engine, CI with the cache kept) skip the compiler image (the slowest step).
  Both PostgreSQL images share one entrypoint (``postgres-entrypoint.sh``): initdb on an empty volume
  from ``POSTGRES_USER``/``POSTGRES_PASSWORD``/``POSTGRES_DB``, scram-sha-256 on the network, 0.0.0.0,
  runs as ``postgres``.
- ``upgrade-infra/pa-assistant:<release>`` and ``upgrade-infra/pa-automations:<release>`` for each
  release of the reference stack: the ``pa_apps`` code and its Python dependencies (installed on the host
  with pip into a cached folder: containers cannot reach PyPI over TLS) in one shared runtime image,
  then one small image per service and release whose CMD serves that release on port 8000.

Every image carries the label ``org.upgrade-infra.inputs``: a hash of everything it is built from
(parent image ID included). A build is skipped when the tag exists with the same hash. Builds use the
Engine API (the classic builder, as ``DOCKER_BUILDKIT=0``), never pull; apt retries a failing mirror.

    python -m upgrade_infra.backends.compose.images build --stack examples/pa-stack-compose

prints one line per image as it goes, then a Rich table: each image's cold time (its build in this run,
else the build time recorded in ``build-times.json`` of the cache dir for the same inputs) and warm time
(a second pass, where every image is found up to date).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from upgrade_infra.backends.compose.engine import Engine, find_engine
from upgrade_infra.core import runner
from upgrade_infra.core.errors import BadInput, OperationFailed

LABEL_INPUTS = "org.upgrade-infra.inputs"
LABEL_RELEASE = "org.upgrade-infra.release"
LABEL_SERVICE = "org.upgrade-infra.service"
LABEL_VERSION = "org.opencontainers.image.version"
BASE_TAG = "upgrade-infra/debian:bookworm"
SUITE = "bookworm"
BASE_PACKAGES = ("python3",)  # the app images run on Debian's python3 (3.11, as the host's wheels)
PATH_DEFAULT = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
APP_PORT = 8000
# the reference stack's Python dependencies (the `examples` extra and what pa_apps imports)
APP_REQUIREMENTS = ("fastapi", "uvicorn", "sqlalchemy", "alembic", "cryptography", "psycopg",
                    "psycopg-binary", "httpx", "pydantic")
ENTRYPOINT = Path(__file__).with_name("postgres-entrypoint.sh")


class ImageBuildFailed(OperationFailed):
    """An image build failed (the builder's last lines are in the message)."""


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "upgrade-infra" / "images"


@dataclass
class Built:
    tag: str
    image_id: str
    seconds: float
    skipped: bool
    inputs: str
    note: str = ""


def digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()


def tree_digest(root: Path, ignore: Callable[[Path], bool] = lambda p: False) -> str:
    """Hash of a directory's relative paths and contents (symlinks followed)."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if ignore(p) or p.is_dir():
            continue
        h.update(str(p.relative_to(root)).encode() + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def _pycache(p: Path) -> bool:
    return "__pycache__" in p.parts or p.suffix == ".pyc"


# -- the Debian mirror and debootstrap ------------------------------------------------------------
def debian_mirror(sources: Path = Path("/etc/apt/sources.list.d/debian.sources"),
                  sources_list: Path = Path("/etc/apt/sources.list")) -> str:
    """The machine's Debian mirror (deb822 ``URIs:`` of the stanza serving bookworm, else a ``deb`` line)."""
    try:
        for stanza in sources.read_text().split("\n\n"):
            fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
            if SUITE in fields.get("Suites", "").split() and fields.get("URIs"):
                return fields["URIs"].split()[0]
    except OSError:
        pass
    try:
        for line in sources_list.read_text().splitlines():
            w = line.split()
            if len(w) >= 3 and w[0] == "deb" and w[2] == SUITE:
                return w[1] if not w[1].startswith("[") else w[2]
    except OSError:
        pass
    return "http://deb.debian.org/debian"


def debootstrap_argv(root: Path, mirror: str, include: Iterable[str] = BASE_PACKAGES) -> list[str]:
    """The debootstrap command of the base image (pure)."""
    argv = ["debootstrap", "--variant=minbase"]
    if include:
        argv.append("--include=" + ",".join(include))
    return [*argv, SUITE, str(root), mirror]


def apt_sources(mirror: str) -> str:
    """deb822 sources of the image (bookworm, -updates, -security; the security mirror beside the main one)."""
    security = mirror.rstrip("/")
    security = security[: -len("/debian")] + "/debian-security" if security.endswith("/debian") else \
        "http://deb.debian.org/debian-security"
    return (f"Types: deb\nURIs: {mirror}\nSuites: {SUITE} {SUITE}-updates\nComponents: main\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
            f"Types: deb\nURIs: {security}\nSuites: {SUITE}-security\nComponents: main\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")


def _need_debootstrap() -> str:
    path = shutil.which("debootstrap") or ("/usr/sbin/debootstrap" if Path("/usr/sbin/debootstrap").exists()
                                           else None)
    if path is None:
        raise BadInput("debootstrap is not installed (needed once, for the Debian base image)",
                       fix="as root: apt-get install -y debootstrap")
    if os.geteuid() != 0:
        raise BadInput("building the Debian base image needs root (debootstrap)",
                       fix=f"run as root once; the tarball is then cached in {cache_dir()}")
    return path


def base_rootfs(mirror: str, cache: Path) -> tuple[Path, bool]:
    """The cached base root filesystem tarball; (path, whether it was made now)."""
    key = digest("rootfs", debootstrap_argv(Path("ROOT"), mirror), apt_sources(mirror))[:16]
    tarball = cache / f"debian-{SUITE}-minbase-{key}.tar"
    if tarball.exists():
        return tarball, False
    _need_debootstrap()
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=cache))
    try:
        root = work / "root"
        runner.run(debootstrap_argv(root, mirror), timeout=1800,
                   env=runner.base_env({"PATH": PATH_DEFAULT}))
        (root / "etc/apt/sources.list").unlink(missing_ok=True)
        (root / "etc/apt/sources.list.d/debian.sources").write_text(apt_sources(mirror))
        for deb in (root / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
        (root / "var/lib/apt/lists/partial").mkdir(parents=True)
        part = tarball.with_suffix(".part")
        runner.run(["tar", "--numeric-owner", "--xattrs", "-C", str(root), "-cf", str(part), "."], timeout=600)
        part.rename(tarball)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tarball, True


# -- building -------------------------------------------------------------------------------------
def existing(client: Any, tag: str) -> Any | None:
    docker = sys.modules.get("docker") or __import__("docker")
    try:
        return client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None


def up_to_date(client: Any, tag: str, inputs: str) -> Any | None:
    img = existing(client, tag)
    if img is not None and (img.labels or {}).get(LABEL_INPUTS) == inputs:
        return img
    return None


def build_base(client: Any, *, mirror: str | None = None, cache: Path | None = None) -> Built:
    mirror = mirror or debian_mirror()
    cache = cache or cache_dir()
    t0 = time.monotonic()
    changes = [f"ENV PATH={PATH_DEFAULT}", "ENV LANG=C.UTF-8", 'CMD ["bash"]']
    inputs = digest("base", debootstrap_argv(Path("ROOT"), mirror), apt_sources(mirror), changes)
    img = up_to_date(client, BASE_TAG, inputs)
    if img is not None:
        return Built(BASE_TAG, img.id, round(time.monotonic() - t0, 2), True, inputs)
    tarball, made = base_rootfs(mirror, cache)
    repo, tag = BASE_TAG.split(":")
    out = client.api.import_image_from_file(str(tarball), repository=repo, tag=tag,
                                            changes=[*changes, f"LABEL {LABEL_INPUTS}={inputs}"])
    if "error" in str(out).lower() and "status" not in str(out):
        raise ImageBuildFailed(f"docker import of {tarball} failed: {out}")
    img = client.images.get(BASE_TAG)
    note = "debootstrap + import" if made else f"import of cached {tarball.name}"
    return Built(BASE_TAG, img.id, round(time.monotonic() - t0, 2), False, inputs, note)


def build_context(client: Any, tag: str, context: Path, *, labels: dict[str, str], inputs: str,
                  note: str = "") -> Built:
    """Build ``context`` (its Dockerfile) as ``tag`` unless it is there with the same inputs."""
    t0 = time.monotonic()
    img = up_to_date(client, tag, inputs)
    if img is not None:
        return Built(tag, img.id, round(time.monotonic() - t0, 2), True, inputs, note)
    log: list[str] = []
    for chunk in client.api.build(path=str(context), tag=tag, labels={**labels, LABEL_INPUTS: inputs},
                                  rm=True, forcerm=True, pull=False, decode=True):
        if "stream" in chunk:
            log.extend(chunk["stream"].splitlines())
        if "error" in chunk:
            tail = " | ".join([ln for ln in log if ln.strip()][-6:])
            raise ImageBuildFailed(f"building {tag} failed: {chunk['error'].strip()} ({tail})",
                                   fix="see the builder output above; rerun with --verbose")
    img = client.images.get(tag)
    return Built(tag, img.id, round(time.monotonic() - t0, 2), False, inputs, note)


def _context(files: dict[str, str | bytes | Path]) -> Path:
    """A temporary build context: name -> text, bytes or a directory/file to copy."""
    ctx = Path(tempfile.mkdtemp(prefix="ctx-", dir=_mkdir(cache_dir())))
    for name, content in files.items():
        dest = ctx / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            if content.is_dir():
                shutil.copytree(content, dest, symlinks=False, ignore=shutil.ignore_patterns("__pycache__",
                                                                                             "*.pyc"))
            else:
                shutil.copy2(content, dest)
        elif isinstance(content, bytes):
            dest.write_bytes(content)
        else:
            dest.write_text(content)
    return ctx


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


# -- PostgreSQL -------------------------------------------------------------------------------------
PG_LABELS = {"org.opencontainers.image.title": "PostgreSQL for upgrade-infra (Debian bookworm)"}


PGVECTOR_BUILD_TAG = "upgrade-infra/pgvector-build:latest"
LABEL_PGVECTOR = "org.upgrade-infra.pgvector"
APT_RETRIES = "-o Acquire::Retries=5"  # a mirror hiccup retries instead of failing the build


def _pgserver() -> tuple[Path, str]:
    """The pgserver wheel's folder and version (its PostgreSQL 16 build: binaries, headers, PGXS)."""
    try:
        import pgserver
    except ImportError:
        raise BadInput("the PostgreSQL images need the pgserver wheel (the PostgreSQL 16 build, and its headers "
                       "for the pgvector both images share), which is not installed",
                       fix="pip install 'upgrade-infra[pg16]'") from None
    return Path(pgserver.__file__).parent, importlib.metadata.version("pgserver")


def pgvector_build_dockerfile(mirror: str) -> str:
    """pgvector for both PostgreSQL images, from one source: Debian has no bookworm package, so Debian's own
    trixie source package (pgvector 0.8.0) is compiled against postgresql-15 and against the headers and
    PGXS that the pgserver wheel ships with its PostgreSQL 16 build (which replaces the wheel's own pgvector
    0.6.2), so both majors carry the same pgvector version. No -march=native: the images must run on any
    x86-64. The compiled files land in /out/15 and /out/16; this build image (compilers, ~1.7 GB) is
    removed once they are copied out (and cached on the host)."""
    return f"""FROM {BASE_TAG}
COPY pginstall/ /usr/lib/postgresql/16/
COPY pgserver.libs/ /usr/lib/pgserver.libs/
RUN printf 'Types: deb-src\\nURIs: {mirror}\\nSuites: trixie\\nComponents: main\\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\\n' > /etc/apt/sources.list.d/trixie-src.sources \\
 && mkdir -p /etc/postgresql-common && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf \\
 && apt-get {APT_RETRIES} update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get {APT_RETRIES} install -y -qq --no-install-recommends build-essential dpkg-dev postgresql-server-dev-15 >/dev/null \\
 && mkdir /src && cd /src && apt-get {APT_RETRIES} source -qq pgvector >/dev/null \\
 && cd /src/pgvector-*/ \\
 && for major in 15 16; do \\
      make -s clean PG_CONFIG=/usr/lib/postgresql/$major/bin/pg_config \\
      && make -s PG_CONFIG=/usr/lib/postgresql/$major/bin/pg_config OPTFLAGS="" \\
      && make -s install PG_CONFIG=/usr/lib/postgresql/$major/bin/pg_config DESTDIR=/out/$major \\
      || exit 1; \\
    done \\
 && ls /src | sed -n 's/^pgvector-\\([0-9.]*\\)$/\\1/p' > /out/pgvector-version.txt \\
 && test -s /out/pgvector-version.txt
"""


def pgvector_files(client: Any, base: Built, mirror: str, cache: Path | None = None) -> tuple[Path, bool]:
    """The compiled pgvector for both majors, as a folder (``15/usr/...``, ``16/usr/...``,
    ``pgvector-version.txt``) extracted from a tarball cached in the images cache dir; (folder, built now).
    Keyed by the build recipe, the base image's inputs and the pgserver version, so a new engine (or a CI
    machine with the cache restored) skips the compiler image entirely."""
    cache = _mkdir(cache or cache_dir())
    pkg, pgserver_version = _pgserver()
    stage = pgvector_build_dockerfile(mirror)
    key = digest("pgvector", stage, base.inputs, pgserver_version)[:16]
    tarball = cache / f"pgvector-{key}.tar"
    made = False
    if not tarball.exists():
        sctx = _context({"Dockerfile": stage, "pginstall": pkg / "pginstall",
                         "pgserver.libs": pkg.parent / "pgserver.libs"})
        try:
            build_context(client, PGVECTOR_BUILD_TAG, sctx, labels={}, inputs=key)
        finally:
            shutil.rmtree(sctx, ignore_errors=True)
        ctr = client.containers.create(PGVECTOR_BUILD_TAG, command=["true"])
        part = tarball.with_suffix(".part")
        try:
            stream, _ = ctr.get_archive("/out")
            with open(part, "wb") as f:
                for chunk in stream:
                    f.write(chunk)
            part.rename(tarball)
        finally:
            ctr.remove(force=True)
            part.unlink(missing_ok=True)
            client.images.remove(PGVECTOR_BUILD_TAG)
        made = True
    out = cache / f"pgvector-{key}"
    if not (out / "pgvector-version.txt").exists():
        tmp = Path(tempfile.mkdtemp(prefix="pgvector-", dir=cache))
        try:
            runner.run(["tar", "-C", str(tmp), "-xf", str(tarball)], timeout=300)
            shutil.rmtree(out, ignore_errors=True)
            (tmp / "out").rename(out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out, made


def pgvector_version(files: Path) -> str:
    return (files / "pgvector-version.txt").read_text().strip()


def pg15_dockerfile() -> str:
    return f"""FROM {BASE_TAG}
RUN mkdir -p /etc/postgresql-common && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf \\
 && apt-get {APT_RETRIES} update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get {APT_RETRIES} install -y -qq --no-install-recommends postgresql-15 >/dev/null \\
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
COPY pgvector/usr/ /usr/
{_pg_common(15, "/usr/lib/postgresql/15/bin")}"""


def pg16_dockerfile() -> str:
    return f"""FROM {BASE_TAG}
RUN groupadd --system postgres && useradd --system --gid postgres --home-dir /var/lib/postgresql \\
    --shell /bin/bash postgres && mkdir -p /var/lib/postgresql && chown postgres:postgres /var/lib/postgresql
# the pgserver wheel's build (its binaries look for their libraries at $ORIGIN/../../../pgserver.libs)
COPY pginstall/ /usr/lib/postgresql/16/
COPY pgserver.libs/ /usr/lib/pgserver.libs/
# pgvector compiled against those headers: replaces the wheel's vector.so and control file, adds the scripts
COPY pgvector/usr/ /usr/
{_pg_common(16, "/usr/lib/postgresql/16/bin")}"""


def _pg_common(major: int, bindir: str) -> str:
    return f"""ENV PATH={bindir}:{PATH_DEFAULT} PGDATA=/var/lib/postgresql/data PG_MAJOR={major}
COPY postgres-entrypoint.sh /usr/local/bin/upgrade-infra-postgres-entrypoint
RUN chmod 755 /usr/local/bin/upgrade-infra-postgres-entrypoint \\
 && mkdir -p /var/lib/postgresql/data /run/postgresql /docker-entrypoint-initdb.d \\
 && chown postgres:postgres /var/lib/postgresql/data /run/postgresql && chmod 700 /var/lib/postgresql/data
VOLUME /var/lib/postgresql/data
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["upgrade-infra-postgres-entrypoint"]
CMD ["postgres"]
"""


def build_postgres(client: Any, major: int, base_id: str, *, mirror: str | None = None,
                   base: Built | None = None) -> Built:
    """``upgrade-infra/postgres:<major>`` (15: Debian's postgresql-15; 16: the pgserver wheel's build), both
    with the same pgvector (see :func:`pgvector_build_dockerfile`), label ``org.upgrade-infra.pgvector``."""
    tag = f"upgrade-infra/postgres:{major}"
    mirror = mirror or debian_mirror()
    if base is None:
        base = Built(BASE_TAG, base_id, 0.0, True, (existing(client, BASE_TAG).labels or {}).get(LABEL_INPUTS, ""))
    labels = {**PG_LABELS, LABEL_VERSION: str(major)}
    files: dict[str, str | bytes | Path] = {"postgres-entrypoint.sh": ENTRYPOINT}
    pkg, pgserver_version = _pgserver()
    if major == 15:
        dockerfile = pg15_dockerfile()
        note = "Debian postgresql-15"
    elif major == 16:
        dockerfile = pg16_dockerfile()
        files.update({"pginstall": pkg / "pginstall", "pgserver.libs": pkg.parent / "pgserver.libs"})
        note = f"pgserver {pgserver_version} build (PostgreSQL 16)"
    else:
        raise BadInput(f"no recipe for PostgreSQL {major}", fix="majors 15 and 16 are built here")
    pgv_key = digest("pgvector", pgvector_build_dockerfile(mirror), base.inputs, pgserver_version)[:16]
    inputs = digest("pg", major, base_id, dockerfile, ENTRYPOINT.read_text(), pgserver_version, pgv_key)
    if up_to_date(client, tag, inputs):
        return build_context(client, tag, Path("."), labels=labels, inputs=inputs)
    t0 = time.monotonic()
    pgv, made = pgvector_files(client, base, mirror)
    version = pgvector_version(pgv)
    files["pgvector"] = pgv / str(major)
    ctx = _context({"Dockerfile": dockerfile, **files})
    note += f" + pgvector {version} ({'compiled now' if made else 'compiled files from cache'})"
    try:
        b = build_context(client, tag, ctx, labels={**labels, LABEL_PGVECTOR: version}, inputs=inputs,
                          note=note)
    finally:
        shutil.rmtree(ctx, ignore_errors=True)
    b.seconds = round(time.monotonic() - t0, 2)
    return b


# -- the reference stack's apps ---------------------------------------------------------------------
def app_requirements() -> list[str]:
    """The apps' dependencies pinned to the versions installed here (same wheels as the local backend)."""
    out = []
    for name in APP_REQUIREMENTS:
        try:
            out.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(name)
    return out


def python_deps(requirements: list[str], cache: Path | None = None) -> tuple[Path, bool]:
    """pip-install the requirements into a cached folder on the host (containers cannot reach PyPI)."""
    cache = cache or cache_dir()
    key = digest("pydeps", requirements, sys.version_info[:2])[:16]
    target = cache / f"pydeps-{key}"
    if target.exists():
        return target, False
    tmp = Path(tempfile.mkdtemp(prefix="pydeps-", dir=_mkdir(cache)))
    tmp.chmod(0o755)
    try:
        runner.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "--no-warn-script-location", "--target", str(tmp), *requirements], timeout=900,
                   env={**os.environ})
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target, True


def releases(stack_yaml: Path) -> dict[str, list[str]]:
    """service -> release versions, from the reference stack's stack.yaml."""
    from ruamel.yaml import YAML

    data = YAML(typ="safe").load(stack_yaml.read_text())
    return {name: [str(v) for v in (svc.get("versions") or {})] for name, svc in data["services"].items()}


def runtime_dockerfile() -> str:
    return f"""FROM {BASE_TAG}
RUN groupadd --system --gid 999 pa && useradd --system --uid 999 --gid pa --home-dir /opt/pa --shell /bin/sh pa \\
 && mkdir -p /data && chown pa:pa /data
COPY site-packages/ /opt/pa/site-packages/
COPY pa_apps/ /opt/pa/app/pa_apps/
# bytecode compiled once here: the containers run read-only code with PYTHONDONTWRITEBYTECODE, so without it
# every start (and every migration run) compiles fastapi, pydantic, sqlalchemy and alembic again (~0.7 s CPU)
RUN python3 -m compileall -q -j 0 /opt/pa/site-packages /opt/pa/app > /dev/null
ENV PYTHONPATH=/opt/pa/site-packages:/opt/pa/app PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PA_DATA_DIR=/data
WORKDIR /opt/pa/app
"""


def app_dockerfile(runtime_tag: str, service: str, release: str) -> str:
    cmd = json.dumps(["python3", "-m", f"pa_apps.{service}", "serve", "--release", release,
                      "--host", "0.0.0.0", "--port", str(APP_PORT)])
    return f"""FROM {runtime_tag}
LABEL {LABEL_SERVICE}="{service}" {LABEL_RELEASE}="{release}" {LABEL_VERSION}="{release}"
USER pa
EXPOSE {APP_PORT}
CMD {cmd}
"""


def build_apps(client: Any, base_id: str, apps_dir: Path, stack_yaml: Path,
               only: Iterable[str] | None = None) -> list[Built]:
    requirements = app_requirements()
    deps, made = python_deps(requirements)
    runtime_inputs = digest("runtime", base_id, runtime_dockerfile(), requirements,
                            tree_digest(apps_dir, _pycache))
    runtime_tag = f"upgrade-infra/pa-runtime:{runtime_inputs[:12]}"
    results: list[Built] = []
    if up_to_date(client, runtime_tag, runtime_inputs):
        results.append(build_context(client, runtime_tag, Path("."), labels={}, inputs=runtime_inputs))
    else:
        t0 = time.monotonic()
        ctx = _context({"Dockerfile": runtime_dockerfile(), "site-packages": deps, "pa_apps": apps_dir})
        try:
            b = build_context(client, runtime_tag, ctx, labels={}, inputs=runtime_inputs,
                              note="pip deps " + ("installed now" if made else "from cache"))
        finally:
            shutil.rmtree(ctx, ignore_errors=True)
        b.seconds = round(time.monotonic() - t0, 2)
        results.append(b)
    runtime_id = results[0].image_id
    wanted = set(only) if only else None
    for service, versions in releases(stack_yaml).items():
        for release in versions:
            tag = f"upgrade-infra/pa-{service}:{release}"
            if wanted is not None and tag not in wanted:
                continue
            dockerfile = app_dockerfile(runtime_tag, service, release)
            inputs = digest("app", runtime_id, dockerfile)
            if up_to_date(client, tag, inputs):
                results.append(build_context(client, tag, Path("."), labels={}, inputs=inputs))
                continue
            ctx = _context({"Dockerfile": dockerfile})
            try:
                results.append(build_context(client, tag, ctx, labels={}, inputs=inputs))
            finally:
                shutil.rmtree(ctx, ignore_errors=True)
    return results


# -- all of it --------------------------------------------------------------------------------------
def stack_sources(stack: Path) -> tuple[Path, Path]:
    """(pa_apps dir, stack.yaml with the releases) for a stack dir: its own, else the sibling pa-stack's."""
    stack = Path(stack).resolve()
    for d in (stack, stack.parent / "pa-stack"):
        if (d / "pa_apps").is_dir() and (d / "stack.yaml").is_file():
            return d / "pa_apps", d / "stack.yaml"
    raise BadInput(f"{stack}: no pa_apps/ and stack.yaml here or in ../pa-stack",
                   fix="--stack examples/pa-stack-compose (from the repository root)")


def build_all(engine: Engine, stack: Path, *, majors: Iterable[int] = (15, 16), apps: bool = True,
              progress: Callable[[Built], None] | None = None) -> list[Built]:
    client = engine.client(timeout=1800)
    done: list[Built] = []

    def record(b: Built) -> Built:
        done.append(b)
        if progress:
            progress(b)
        return b

    mirror = debian_mirror()
    base = record(build_base(client, mirror=mirror))
    for major in majors:
        record(build_postgres(client, major, base.image_id, mirror=mirror, base=base))
    if apps:
        apps_dir, stack_yaml = stack_sources(stack)
        for b in build_apps(client, base.image_id, apps_dir, stack_yaml):
            record(b)
    return done


# -- build times (the table's "cold" column when an image was built by an earlier run) -------------------
def _times_file() -> Path:
    return cache_dir() / "build-times.json"


def load_times() -> dict[str, dict]:
    try:
        return json.loads(_times_file().read_text())
    except (OSError, ValueError):
        return {}


def record_times(results: Iterable[Built]) -> dict[str, dict]:
    """Remember how long each image built now took (by tag and inputs); returns the whole record."""
    times = load_times()
    for b in results:
        if not b.skipped:
            times[b.tag] = {"inputs": b.inputs, "seconds": b.seconds, "note": b.note,
                            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        _mkdir(cache_dir())
        tmp = _times_file().with_suffix(".part")
        tmp.write_text(json.dumps(times, indent=1, sort_keys=True))
        tmp.replace(_times_file())
    except OSError:
        pass
    return times


def table_rows(first: list[Built], warm: list[Built], times: dict[str, dict]) -> list[dict[str, Any]]:
    """One row per image: cold = its build time (this run, else the recorded one for the same inputs),
    warm = the up-to-date check of a second pass."""
    warm_by_tag = {b.tag: b for b in warm}
    rows = []
    for b in first:
        rec = times.get(b.tag) or {}
        cold = b.seconds if not b.skipped else (rec.get("seconds") if rec.get("inputs") == b.inputs else None)
        w = warm_by_tag.get(b.tag)
        rows.append({"image": b.tag, "id": b.image_id.split(":")[-1][:12],
                     "state": "up to date" if b.skipped else "built",
                     "cold_s": cold, "warm_s": w.seconds if w is not None and w.skipped else None,
                     "note": b.note or rec.get("note", "") if rec.get("inputs") == b.inputs else b.note})
    return rows


def render_table(rows: list[dict[str, Any]], total: float, warm_total: float) -> Any:
    from rich.table import Table

    def secs(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    t = Table(title="upgrade-infra images", title_justify="left",
              caption="cold: build time (this run, else the last build of the same inputs); "
                      "warm: a second pass, every image found up to date", caption_justify="left")
    t.add_column("image")
    t.add_column("id")
    t.add_column("this run")
    t.add_column("cold (s)", justify="right")
    t.add_column("warm (s)", justify="right")
    t.add_column("how")
    for r in rows:
        t.add_row(r["image"], r["id"], r["state"], secs(r["cold_s"]), secs(r["warm_s"]), r["note"])
    t.add_section()
    colds = [r["cold_s"] for r in rows]
    cold_total = round(sum(colds), 1) if colds and None not in colds else None
    t.add_row("total", "", f"{total:.1f} s", secs(cold_total), secs(warm_total), "")
    return t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m upgrade_infra.backends.compose.images")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build (or find up to date) the base, PostgreSQL and app images, then "
                                     "print a table of cold and warm times")
    b.add_argument("--stack", type=Path, default=Path("examples/pa-stack-compose"))
    b.add_argument("--pg", default="15,16", help="PostgreSQL majors, comma-separated ('' for none)")
    b.add_argument("--no-apps", action="store_true")
    b.add_argument("--json", type=Path, help="write the results (seconds, skipped) to this file")
    a = ap.parse_args(argv)
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # a log or a pipe: wide enough for one line per image
        console = Console(width=200)
    try:
        engine = find_engine()
        t0 = time.monotonic()

        def show(x: Built) -> None:
            state = "up to date" if x.skipped else "built"
            console.print(f"{x.tag:42} {state:10} {x.seconds:7.2f}s  {x.note}", highlight=False, markup=False)

        majors = [int(m) for m in a.pg.split(",") if m.strip()]
        results = build_all(engine, a.stack, majors=majors, apps=not a.no_apps, progress=show)
        total = round(time.monotonic() - t0, 2)
        times = record_times(results)
        t1 = time.monotonic()
        warm = build_all(engine, a.stack, majors=majors, apps=not a.no_apps)
        warm_total = round(time.monotonic() - t1, 2)
        rows = table_rows(results, warm, times)
        console.print(render_table(rows, total, warm_total))
        if a.json:
            a.json.write_text(json.dumps({"total_s": total, "warm_total_s": warm_total, "rows": rows,
                                          "images": [asdict(r) for r in results]}, indent=1))
    except (BadInput, OperationFailed) as e:
        print(e.one_line(), file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
