"""Reaching an environment from a shell: run a command with a service's settings (``exec``), and
connect to one of its databases (``db``).

``exec`` is ``docker compose exec``/``kamal app exec`` for the local backend: the command runs with
the service's rendered env (secrets included, through the environment, never argv), in its cwd, with
its installed version on PATH (``<install_dir>/bin``, ``<install_dir>/node_modules/.bin``) and
``UPGRADE_INFRA_INSTALL_DIR``/``_DATA_DIR``/``_VERSION`` set. ``db`` gives a connection string
without the password, plus a 0600 ``pgpass`` file in the state dir that libpq (``PGPASSFILE``) reads:
the password is never printed and never on a command line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upgrade_infra.core.errors import BadInput, UnknownName

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment


def exec_env(base: dict[str, str], ctx: dict[str, Any]) -> dict[str, str]:
    """The service's env plus its install on PATH and the UPGRADE_INFRA_* locations (pure)."""
    install = Path(ctx["install_dir"])
    path = [str(d) for d in (install / "bin", install / "node_modules" / ".bin") if d.is_dir()]
    out = dict(base)
    out["PATH"] = os.pathsep.join([*path, base.get("PATH") or os.environ.get("PATH", "")])
    out.update(UPGRADE_INFRA_INSTALL_DIR=str(install), UPGRADE_INFRA_DATA_DIR=ctx["data_dir"],
               UPGRADE_INFRA_VERSION=ctx["version"], UPGRADE_INFRA_ENV=ctx["env"])
    return out


def exec_in(env: Environment, service: str, argv: list[str], *, version: str | None = None) -> int:
    """Run ``argv`` attached to the terminal with ``service``'s settings (the backend's); its exit code."""
    if not argv:
        raise BadInput("no command given", fix=f"write: upgrade-infra exec {env.name} {service} -- COMMAND [ARGS…]")
    env.manifest.service(service)
    if version is not None:
        env.manifest.version_of(service, version)
    return env.exec_attached(service, argv, version)


# -- databases ---------------------------------------------------------------------------------------
def _db(env: Environment, db: str | None) -> dict[str, Any]:
    dbs = env.db_info(view="tool")  # the person at the tool's host connects as the tool does
    name = db or next(iter(dbs))
    if name not in dbs:
        raise UnknownName(f"no database {name!r} in {env.manifest.path}", fix=f"use one of: {', '.join(dbs)}")
    return dbs[name]


def pgpass_line(host: str, port: int, db: str, user: str, password: str) -> str:
    """One ``~/.pgpass`` line; ``:`` and ``\\`` escaped as libpq requires (pure)."""
    def esc(v: object) -> str:
        return str(v).replace("\\", "\\\\").replace(":", "\\:")

    return ":".join(esc(v) for v in (host, port, db, user, password)) + "\n"


def pgpass_file(env: Environment, info: dict[str, Any]) -> Path:
    """A 0600 pgpass file for one database, in the environment's private secrets dir."""
    d = env.state.private_dir("secrets", env.name)
    p = d / f"pgpass-{info['name']}"
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(pgpass_line(info["host"], info["port"], info["name"], info["user"], info["password"]))
    os.chmod(p, 0o600)
    return p


def connection(env: Environment, db: str | None = None) -> dict[str, Any]:
    """A connection string without the password, the libpq variables, and the pgpass file to use."""
    info = _db(env, db)
    passfile = pgpass_file(env, info)
    url = f"postgresql://{info['user']}@{info['host']}:{info['port']}/{info['name']}"
    return {"environment": env.name, "database": info["name"], "url": url, "host": info["host"],
            "port": info["port"], "user": info["user"], "passfile": str(passfile),
            "libpq_env": {"PGHOST": info["host"], "PGPORT": str(info["port"]), "PGUSER": info["user"],
                          "PGDATABASE": info["name"], "PGPASSFILE": str(passfile)}}


def psql(env: Environment, db: str | None = None, args: list[str] | None = None) -> int:
    """Open ``psql`` on the database (the password reaches it through PGPASSFILE); its exit code."""
    c = connection(env, db)
    return env.database.attach_tool("psql", list(args or []), env=c["libpq_env"])
