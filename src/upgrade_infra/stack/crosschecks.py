"""Cross-references inside a manifest: names, placeholders, port blocks, dependency cycles.

Returns ``(loc, problem, fix)`` triples; :func:`upgrade_infra.stack.manifest.load_manifest` maps them to lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from upgrade_infra.stack import checkkinds, templates

if TYPE_CHECKING:
    from upgrade_infra.stack.manifest import Manifest

Issue = tuple[tuple, str, str | None]
PG_OFFSET = 0


def semantic_issues(m: Manifest) -> list[Issue]:
    out: list[Issue] = []
    out += _references(m)
    out += _templates(m)
    out += _ports(m)
    out += _cycles(m)
    out += checkkinds.manifest_issues(m)  # each check kind (from the registry) validates its own fields
    return out


def _backend_issues(m: Manifest) -> list[Issue]:
    """A service needs a command where it runs as a process (``local``), an image where it runs as a
    container (``compose``: ``compose.services.<svc>.image``)."""
    out: list[Issue] = []
    backends = {e.backend for e in m.environments.values()}
    if "local" in backends:
        for name, s in m.services.items():
            if not s.command.strip():
                out.append((("services", name, "command"), "empty: the local backend runs the service as a process",
                            "write the command that starts it (an empty command is for the compose backend)"))
    if "compose" in backends:
        images = (m.compose.services if m.compose else {})
        for name in m.services:
            if name not in images:
                out.append((("compose", "services") if m.compose else ("environments",),
                            f"service {name!r} has no image for the compose backend",
                            f"add compose.services.{name}.image, e.g. 'registry/{name}:{{version}}'"))
    if m.compose:
        for name in m.compose.services:
            if name not in m.services:
                out.append((("compose", "services", name), f"unknown service {name!r}",
                            f"use one of: {', '.join(sorted(m.services))}"))
    return out


def _references(m: Manifest) -> list[Issue]:
    out: list[Issue] = []
    svcs = set(m.services)
    for name, s in m.services.items():
        for i, d in enumerate(s.depends_on):
            if d not in svcs:
                out.append((("services", name, "depends_on", i), f"unknown service {d!r}",
                            f"use one of: {', '.join(sorted(svcs))}"))
    for db, spec in m.postgres.databases.items():
        if spec.owner not in svcs:
            out.append((("postgres", "databases", db, "owner"), f"unknown service {spec.owner!r}",
                        f"use one of: {', '.join(sorted(svcs))}"))
    for env, e in m.environments.items():
        for svc, ver in e.versions.items():
            if svc not in svcs:
                out.append((("environments", env, "versions", svc), f"unknown service {svc!r}", None))
            elif ver not in m.services[svc].versions:
                out.append((("environments", env, "versions", svc), f"unknown version {ver!r}",
                            f"declare it under services.{svc}.versions or use one of: "
                            f"{', '.join(m.services[svc].versions)}"))
        for svc in svcs - set(e.versions):
            out.append((("environments", env, "versions"), f"no version given for service {svc!r}",
                        f"add '{svc}: <version>'"))
    for svc in m.staging.overrides:
        if svc not in svcs:
            out.append((("staging", "overrides", svc), f"unknown service {svc!r}", None))
    for db in m.staging.masking:
        if db not in m.postgres.databases:
            out.append((("staging", "masking", db), f"unknown database {db!r}",
                        f"use one of: {', '.join(m.postgres.databases)}"))
    out += _backend_issues(m)
    if m.seed and m.seed.service and m.seed.service not in svcs:
        out.append((("seed", "service"), f"unknown service {m.seed.service!r}", f"use one of: {', '.join(sorted(svcs))}"))
    checks = {c.name for c in m.checks}
    for name, s in m.services.items():
        for which in ("health", "readiness"):
            p = getattr(s, which)
            if p is None:
                continue
            if p.check and which == "health":
                out.append((("services", name, which, "check"), "a check is for readiness only",
                            f"move it to services.{name}.readiness"))
            elif p.check and p.check not in checks:
                out.append((("services", name, which, "check"), f"unknown check {p.check!r}",
                            f"name one of the checks: {', '.join(sorted(checks)) or '(none declared)'}"))
            if not (p.http or p.command or p.check):
                out.append((("services", name, which), "nothing to probe", "give http:, command: or check:"))
    for i, inv in enumerate(m.migration.invariants):
        if inv.database not in m.postgres.databases:
            out.append((("migration", "invariants", i, "database"), f"unknown database {inv.database!r}", None))
    for name, sec in m.secrets.items():
        if not (sec.env or sec.file or sec.generate):
            out.append((("secrets", name), "no source for the value", "set env:, file: or generate: true"))
    return out


def _names(m: Manifest) -> dict[str, set[str]]:
    return {"db": set(m.postgres.databases), "services": set(m.services), "secrets": set(m.secrets),
            "data_dirs": {n for n, s in m.services.items() if s.data_dir}}


def _templates(m: Manifest) -> list[Issue]:
    out: list[Issue] = []
    names = _names(m)

    def check(loc: tuple, text: str | None, allowed: set[str], argv_env: str | None = None) -> None:
        """``argv_env``: the text is a command line; secrets in it are an error (pass them in this env)."""
        if not text:
            return
        if argv_env and (problem := templates.argv_secret_problem(text, argv_env)):
            msg, fix = problem.split(" (fix: ", 1)
            out.append((loc, msg, fix.rstrip(")")))
        try:
            fields = templates.placeholders(text)
        except Exception as e:  # noqa: BLE001 - reported as a manifest issue
            out.append((loc, str(e), "balance the braces"))
            return
        for f in fields:
            problem = templates.check_placeholder(f, allowed, names)
            if problem:
                out.append((loc, problem, None))

    S = templates.SERVICE_FIELDS
    for name, s in m.services.items():
        where = f"services.{name}.env"
        for key in ("command", "cwd", "install", "migrate", "downgrade", "sql"):
            check(("services", name, key), getattr(s, key), S, None if key == "cwd" else where)
        for probe in ("health", "readiness"):
            p = getattr(s, probe, None)
            check(("services", name, probe, "command"), getattr(p, "command", None), S, where)
        for k, v in s.env.items():
            check(("services", name, "env", k), v, S)
        for ver, vs in s.versions.items():
            if vs:
                check(("services", name, "versions", ver, "command"), vs.command, S, where)
                check(("services", name, "versions", ver, "install"), vs.install, S, where)
                for k, v in vs.env.items():
                    check(("services", name, "versions", ver, "env", k), v, S)
    for svc, env in m.staging.overrides.items():
        for k, v in env.items():
            check(("staging", "overrides", svc, k), v, S)
    if m.seed:
        seed_fields = templates.SEED_FIELDS | (S if m.seed.service else set())
        check(("seed", "command"), m.seed.command, seed_fields, "seed.env")
        check(("seed", "cwd"), m.seed.cwd, seed_fields)
        for k, v in m.seed.env.items():
            check(("seed", "env", k), v, seed_fields)
    return out


def block_size(m: Manifest) -> int:
    """Ports used by one environment: PostgreSQL at base+0, each service at base+offset."""
    return max([s.port for s in m.services.values()] + [PG_OFFSET]) + 1


def _ports(m: Manifest) -> list[Issue]:
    out: list[Issue] = []
    seen: dict[int, str] = {}
    for name, s in m.services.items():
        if s.port in seen:
            out.append((("services", name, "port"), f"port offset {s.port} is also used by service {seen[s.port]!r}",
                        "give each service its own offset (1-99)"))
        seen[s.port] = name
    size = block_size(m)
    blocks = [(n, e.port_base, e.port_base + size - 1) for n, e in m.environments.items()]
    lo, hi = m.staging.port_range
    if hi - lo + 1 < size:
        out.append((("staging", "port_range"), f"range {lo}-{hi} is smaller than one block ({size} ports)", None))
    blocks.append(("staging.port_range", lo, hi))
    for i, (a, a0, a1) in enumerate(blocks):
        for b, b0, b1 in blocks[i + 1:]:
            if a0 <= b1 and b0 <= a1:
                loc = ("environments", a, "port_base") if a in m.environments else ("staging", "port_range")
                out.append((loc, f"ports {a0}-{a1} of {a} overlap ports {b0}-{b1} of {b}",
                            f"move one block; each environment needs {size} consecutive ports"))
    return out


EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_range(path: Path = EPHEMERAL_RANGE_FILE) -> tuple[int, int] | None:
    """The kernel's ephemeral port range (where outgoing connections get their local port), if known."""
    try:
        lo, hi = (int(x) for x in path.read_text().split()[:2])
    except (OSError, ValueError):
        return None
    return lo, hi


def warning_issues(m: Manifest, ephemeral: tuple[int, int] | None = None) -> list[Issue]:
    """Problems worth a warning, not a refusal: port blocks inside the kernel's ephemeral range, where
    any outgoing connection on the host can take a port between the tool's check and the service's bind."""
    eph = ephemeral or ephemeral_range()
    if eph is None:
        return []
    e0, e1 = eph
    size = block_size(m)
    blocks = [(("environments", n, "port_base"), f"ports {e.port_base}-{e.port_base + size - 1} of {n}",
               e.port_base, e.port_base + size - 1) for n, e in m.environments.items()]
    lo, hi = m.staging.port_range
    blocks.append((("staging", "port_range"), f"staging ports {lo}-{hi}", lo, hi))
    return [(loc, f"{what} overlap the kernel's ephemeral port range {e0}-{e1} (any outgoing connection on "
                  "this host may take one of them, and the service then cannot bind)",
             f"move them below {e0}, or narrow the range: sysctl net.ipv4.ip_local_port_range")
            for loc, what, b0, b1 in blocks if b0 <= e1 and e0 <= b1]


def _cycles(m: Manifest) -> list[Issue]:
    state: dict[str, int] = {}
    out: list[Issue] = []

    def visit(n: str, path: list[str]) -> None:
        if state.get(n) == 2 or n not in m.services:
            return
        if state.get(n) == 1:
            out.append((("services", n, "depends_on"), f"dependency cycle: {' -> '.join(path + [n])}",
                        "remove one of the depends_on entries"))
            return
        state[n] = 1
        for d in m.services[n].depends_on:
            visit(d, path + [n])
        state[n] = 2

    for n in m.services:
        visit(n, [])
    return out
