"""The check-kind registry, and the manifest's validation of every declared check against it.

A check kind is registered by its manifest name (``checks[].kind``) with
:func:`register_kind` (the built-ins in :mod:`upgrade_infra.validation.checks`, others in any
package) through the ``upgrade_infra.check_kinds`` entry-point group: the manifest asks this
registry and never imports the validation package. Each kind brings a pydantic config model (its
fields, checked when the manifest loads), a ``run`` function and optional semantic checks.

:func:`manifest_issues` validates every declared check when the manifest loads: unknown kind,
unknown or missing field, bad JSON path, unknown service or database, unrenderable template;
each issue names the check (``checks.N``) and the field, and maps to a file line.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from upgrade_infra.core.registry import GROUPS, Registry

if TYPE_CHECKING:
    from upgrade_infra.stack.manifest import Manifest

Issue = tuple[tuple, str, str | None]
SUITE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


@dataclass(frozen=True)
class Kind:
    name: str
    config: type[BaseModel]
    run: Callable[..., Any]  # (CheckSpec, config, CheckContext) -> Outcome
    exclusive: bool = False  # runs alone (performance, browser): not alongside other checks
    semantic: Callable[..., list[Issue]] | None = None  # (CheckSpec, config, Manifest) -> issues


#: check kinds by manifest name
KINDS: Registry[Kind] = Registry("check kind", GROUPS["check kind"])


def register_kind(name: str, config: type[BaseModel], *, exclusive: bool = False,
                  semantic: Callable | None = None) -> Callable:
    """Decorator on a kind's ``run(spec, config, ctx) -> Outcome``."""
    def deco(fn: Callable) -> Callable:
        KINDS.add(name, Kind(name, config, fn, exclusive, semantic))
        return fn

    return deco


def get_kind(name: str) -> Kind:
    return KINDS.get(name)


def manifest_issues(m: Manifest) -> list[Issue]:
    out: list[Issue] = []
    seen: dict[str, int] = {}
    for i, spec in enumerate(m.checks):
        at = ("checks", i)
        if spec.name in seen:
            out.append(((*at, "name"), f"check {spec.name!r}: duplicate name (also checks.{seen[spec.name]})",
                        "give every check its own name"))
        seen.setdefault(spec.name, i)
        if not SUITE.match(spec.suite):
            out.append(((*at, "suite"), f"check {spec.name!r}: bad suite name {spec.suite!r}",
                        "use lowercase letters, digits, '-' or '_', starting with a letter"))
        if spec.service is not None and spec.service not in m.services:
            out.append(((*at, "service"), f"check {spec.name!r}: unknown service {spec.service!r}",
                        f"use one of: {', '.join(m.services)}"))
        kind = KINDS.get(spec.kind, None)
        if kind is None:
            out.append(((*at, "kind"), f"check {spec.name!r}: unknown check kind {spec.kind!r}",
                        f"use one of: {', '.join(KINDS.names())}"))
            continue
        try:
            cfg = kind.config.model_validate(spec.model_extra or {})
        except ValidationError as e:
            out += [_pydantic_issue(spec.name, at, kind, err) for err in e.errors()]
            continue
        if kind.semantic:
            out += [((*at, *loc), f"check {spec.name!r}: {problem}", fix)
                    for loc, problem, fix in kind.semantic(spec, cfg, m)]
    return out


def _pydantic_issue(check: str, at: tuple, kind: Kind, err: dict) -> Issue:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and (p[:1].isupper() or "[" in p)))
    problem, fix = err["msg"].removeprefix("Value error, "), None
    if err["type"] == "extra_forbidden":
        problem = f"unknown field {loc[-1]!r} for kind {kind.name!r}"
        best = difflib.get_close_matches(str(loc[-1]), field_names(kind.config, loc[:-1]), n=1)
        fix = f"did you mean {best[0]!r}?" if best else f"see docs/testing/check-kinds.md#{kind.name}"
    elif err["type"] == "missing":
        fix = f"add '{loc[-1]}:'"
    return ((*at, *loc), f"check {check!r}: {problem}", fix)


def field_names(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names (aliases) of the model(s) found at ``loc`` inside ``model``, for did-you-mean."""
    models = [model]
    for part in loc:
        if isinstance(part, int):
            continue
        nxt: list[type[BaseModel]] = []
        for m in models:
            f = next((f for n, f in m.model_fields.items() if part in (n, f.alias)), None)
            if f is not None:
                nxt += [a for a in _flatten(f.annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
        models = nxt
    return sorted({f.alias or n for m in models for n, f in m.model_fields.items()})


def _flatten(ann: Any) -> list:
    args = getattr(ann, "__args__", None) or getattr(ann, "__metadata__", None) and [ann.__origin__]
    if not args:
        return [ann]
    return [x for a in args for x in _flatten(a)]
