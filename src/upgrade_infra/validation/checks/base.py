"""What every check kind shares: its config base model, the run context, the outcome, the registry.

A kind is registered by its manifest name with :func:`register_kind` (the registry is
:mod:`upgrade_infra.stack.checkkinds`, which the manifest asks); it brings a pydantic
``Config`` model (the check's kind-specific fields, validated when the manifest loads) and a
``run(spec, config, ctx) -> Outcome`` function. Kinds never raise for a failing check: they
return an :class:`Outcome`; an exception escaping a kind is reported as an error of that check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from upgrade_infra.stack import templates
from upgrade_infra.stack.checkkinds import KINDS, Issue, Kind, get_kind, register_kind

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment
    from upgrade_infra.stack.manifest import CheckSpec, Manifest
    from upgrade_infra.validation.baseline import Baseline

# placeholders a check may use: {services.NAME.url}, {db.NAME.url}, {secrets.NAME}, {env}, {stack_dir}...
CHECK_FIELDS = {"services", "db", "secrets", "env", "stack_dir", "state_dir", "report_dir", "python"}
__all__ = ["CHECK_FIELDS", "KINDS", "CheckContext", "Issue", "Kind", "KindConfig", "Outcome", "get_kind",
           "parse_config", "register_kind", "template_issues"]


class KindConfig(BaseModel):
    """Base of every kind's config: unknown fields are errors; ``timeout_s`` bounds one check."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    timeout_s: float = Field(10, gt=0, le=3600, description="the whole check must finish within this")


@dataclass
class Outcome:
    passed: bool
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    error: bool = False  # could not run (unreachable, bad template...) rather than an assertion failed

    @classmethod
    def fail(cls, message: str, **details: Any) -> Outcome:
        return cls(False, message, details)

    @classmethod
    def broken(cls, message: str, **details: Any) -> Outcome:
        return cls(False, message, details, error=True)


@dataclass
class CheckContext:
    """What a running check may use: the environment, its template values, the report dir, a baseline."""

    env: Environment
    values: Mapping[str, Any]
    report_dir: Path
    baseline: Baseline | None = None

    @classmethod
    def for_env(cls, env: Environment, report_dir: Path, baseline: Baseline | None = None) -> CheckContext:
        values = dict(env.base_context())
        values["report_dir"] = str(report_dir)
        return cls(env, values, report_dir, baseline)

    def render(self, text: str, variables: Mapping[str, Any] | None = None) -> str:
        return templates.render(text, {**self.values, **(variables or {})})

    def service_url(self, service: str) -> str:
        return self.env.service_url(service)


def parse_config(spec: CheckSpec) -> Any:
    """The kind-specific config of a (manifest-validated) check."""
    return get_kind(spec.kind).config.model_validate(spec.model_extra or {})


def template_issues(loc: tuple, value: Any, m: Manifest, variables: set[str] | None = None) -> list[Issue]:
    """Placeholders in ``value`` (strings, recursively) that cannot be rendered for a check.

    ``variables``: names saved by earlier workflow steps (None outside workflows).
    """
    if isinstance(value, dict):
        return [i for k, v in value.items() for i in template_issues((*loc, k), v, m, variables)]
    if isinstance(value, list):
        return [i for n, v in enumerate(value) for i in template_issues((*loc, n), v, m, variables)]
    if not isinstance(value, str):
        return []
    names = {"db": set(m.postgres.databases), "services": set(m.services), "secrets": set(m.secrets)}
    try:
        fields = templates.placeholders(value)
    except Exception as e:  # noqa: BLE001 - reported as a manifest issue
        return [(loc, str(e), "balance the braces; write {{ for a literal {")]
    out: list[Issue] = []
    for f in fields:
        if variables and f in variables:
            continue
        problem = templates.check_placeholder(f, CHECK_FIELDS, names)
        if problem:
            fix = (f"save it in an earlier step (saved so far: {', '.join(sorted(variables)) or 'none'})"
                   if variables is not None and "." not in f else None)
            out.append((loc, problem, fix))
    return out
