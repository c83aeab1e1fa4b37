"""Static lint of a service's migration SQL with ``squawk`` (PyPI ``squawk-cli``).

The SQL comes from the service's declared ``sql`` command (for Alembic: ``upgrade --sql``, offline:
it does not connect to the database). Findings of rules about locks are flagged ``lock_hazard``;
the rehearsal then measures how long those locks really last on production-sized data.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upgrade_infra.core import runner
from upgrade_infra.core.errors import BadInput, CommandFailed

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment

# Style rules that say nothing about a migration's safety on a live database.
DEFAULT_EXCLUDE = ("prefer-bigint-over-int", "prefer-bigint-over-smallint", "prefer-identity",
                   "prefer-text-field", "prefer-robust-stmts", "require-statement-timeout")
LOCK_RULES = frozenset({
    "require-concurrent-index-creation", "require-concurrent-index-deletion", "adding-field-with-default",
    "adding-not-nullable-field", "adding-required-field", "changing-column-type", "constraint-missing-not-valid",
    "disallowed-unique-constraint", "adding-foreign-key-constraint", "adding-serial-primary-key-field",
    "renaming-column", "renaming-table", "require-lock-timeout", "ban-drop-column", "ban-drop-table",
    "ban-alter-domain-with-add-constraint", "ban-create-domain-with-constraint", "ban-concurrent-index-creation-in-transaction",
})


# -- pure builders ------------------------------------------------------------------------------
def squawk_argv(paths: list[str], *, squawk: str = "squawk", pg_version: str | None = None,
                exclude: tuple[str, ...] = DEFAULT_EXCLUDE, include: tuple[str, ...] = (),
                stdin_name: str | None = None, assume_in_transaction: bool = False) -> list[str]:
    argv = [squawk, "--reporter", "json"]
    if pg_version:
        argv += ["--pg-version", pg_version]
    if exclude:
        argv += ["--exclude", ",".join(exclude)]
    if include:
        argv += ["--include", ",".join(include)]
    if assume_in_transaction:
        argv.append("--assume-in-transaction")
    if stdin_name:
        argv += ["--stdin-filepath", stdin_name]
    return argv + list(paths)


def sql_command_context(from_version: str, to_version: str) -> dict[str, str]:
    """Template variables the manifest's ``sql`` command uses (``{from_version}``, ``{to_version}``)."""
    return {"from_version": from_version, "to_version": to_version}


def parse_findings(stdout: str, sql_text: str) -> list[dict[str, Any]]:
    """squawk's JSON (0-based lines) -> findings with 1-based line numbers and the statement text."""
    try:
        raw = json.loads(stdout or "[]")
    except ValueError as e:
        raise CommandFailed(f"squawk printed no JSON: {stdout[:200]!r}", fix="check `squawk --version`") from e
    lines = sql_text.splitlines()
    out = []
    for f in raw:
        first, last = int(f.get("line", 0)), int(f.get("line_end", f.get("line", 0)))
        stmt = " ".join(x.strip() for x in lines[first:last + 1]).strip()
        out.append({"line": first + 1, "rule": f.get("rule_name"), "level": f.get("level"),
                    "message": f.get("message"), "help": f.get("help"), "statement": stmt[:300],
                    "lock_hazard": f.get("rule_name") in LOCK_RULES})
    return out


# -- running it ---------------------------------------------------------------------------------
@dataclass
class LintResult:
    service: str
    from_version: str
    to_version: str
    sql: str = ""
    findings: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def lock_hazards(self) -> list[dict[str, Any]]:
        return [f for f in self.findings if f["lock_hazard"]]

    def to_dict(self) -> dict[str, Any]:
        return {"service": self.service, "from": self.from_version, "to": self.to_version,
                "statements": self.sql.count(";"), "findings": self.findings,
                "lock_hazards": len(self.lock_hazards), "error": self.error}


def squawk_binary() -> str:
    here = Path(sys.executable).parent / "squawk"
    found = str(here) if here.exists() else shutil.which("squawk")
    if not found:
        raise BadInput("squawk is not installed", fix="pip install 'upgrade-infra[migration]' (PyPI squawk-cli)")
    return found


def lint_sql(sql_text: str, name: str = "migration.sql", pg_version: str | None = None,
             exclude: tuple[str, ...] = DEFAULT_EXCLUDE) -> list[dict[str, Any]]:
    argv = squawk_argv([], squawk=squawk_binary(), pg_version=pg_version, exclude=exclude, stdin_name=name)
    res = runner.run(argv, input=sql_text, timeout=120, check=False)
    if res.returncode not in (0, 1):
        raise CommandFailed(f"squawk exited {res.returncode}: {res.stderr.strip()[:300]}", argv=argv)
    return parse_findings(res.stdout, sql_text)


def offline_sql(env: Environment, service: str, from_version: str, to_version: str) -> str:
    """The service's migration SQL from ``from_version`` to ``to_version`` (its ``sql`` command)."""
    if not env.manifest.service(service).sql:
        raise BadInput(f"service {service!r} declares no `sql` command in {env.manifest.path}",
                       fix=f"add services.{service}.sql (e.g. alembic upgrade --sql) or skip the lint")
    for v in (from_version, to_version):
        env.manifest.version_of(service, v)
    res = env.run_job(service, "sql", version=to_version, timeout=300,
                      **sql_command_context(from_version, to_version))
    if res.returncode != 0:
        tail = " | ".join((res.stderr or res.stdout).strip().splitlines()[-3:])
        raise CommandFailed(f"{service} sql {from_version} -> {to_version} exited {res.returncode}: {tail}",
                            fix="run the service's sql command by hand to see why")
    return res.stdout


def lint(env: Environment, service: str, from_version: str, to_version: str,
         exclude: tuple[str, ...] = DEFAULT_EXCLUDE) -> LintResult:
    out = LintResult(service, from_version, to_version)
    out.sql = offline_sql(env, service, from_version, to_version)
    major = env.database.major
    out.findings = lint_sql(out.sql, f"{service}-{from_version}-{to_version}.sql", f"{major}.0", exclude)
    return out
