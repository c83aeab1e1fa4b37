"""API compatibility: compare a candidate version's OpenAPI document with the current one.

Breaking (for existing clients): a path or operation removed; a parameter or request field that
becomes required; a type that changes; a request body that becomes required; a success response,
or a field of one, that disappears or is no longer guaranteed. Additions are compatible.
The documents come from a running environment (``services.X.openapi`` path) or a saved file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from upgrade_infra.core.errors import BadInput, OperationFailed

if TYPE_CHECKING:
    from upgrade_infra.backends import Environment

# per direction, the first matching rule on (in old, in new, required in old, required in new)
FIELD_RULES = {
    "request": [(lambda o, n, ro, rn: rn and not ro, True, "request field {} is now required"),
                (lambda o, n, ro, rn: n and not o, False, "new optional request field {}"),
                (lambda o, n, ro, rn: o and not n, False, "request field {} removed (now ignored or rejected)")],
    "response": [(lambda o, n, ro, rn: o and not n, True, "response field {} removed"),
                 (lambda o, n, ro, rn: ro and not rn, True, "response field {} no longer guaranteed (not required)"),
                 (lambda o, n, ro, rn: n and not o, False, "new response field {}")],
}
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
MAX_DEPTH = 8


@dataclass
class ApiChange:
    breaking: bool
    where: str  # "POST /api/users" or "GET /api/users -> 200"
    what: str

    def __str__(self) -> str:
        return f"{'BREAKING' if self.breaking else 'compatible'}: {self.where}: {self.what}"


@dataclass
class ApiDiff:
    service: str
    current: str
    candidate: str
    changes: list[ApiChange] = field(default_factory=list)

    @property
    def breaking(self) -> list[ApiChange]:
        return [c for c in self.changes if c.breaking]

    @property
    def compatible(self) -> bool:
        return not self.breaking

    def to_dict(self) -> dict[str, Any]:
        return {"service": self.service, "current": self.current, "candidate": self.candidate,
                "compatible": self.compatible, "breaking": len(self.breaking),
                "changes": [asdict(c) for c in self.changes]}


# -- documents --------------------------------------------------------------------------------------
def fetch_openapi(env: Environment, service: str, timeout: float = 10.0) -> dict[str, Any]:
    path = env.manifest.service(service).openapi
    if not path:
        raise BadInput(f"service {service!r} declares no OpenAPI document",
                       fix=f"add services.{service}.openapi: /openapi.json (or pass a saved document)")
    url = env.service_url(service) + path
    try:
        r = httpx.get(url, timeout=timeout)
        r.raise_for_status()
        return r.json()
    except (httpx.HTTPError, json.JSONDecodeError) as e:
        raise OperationFailed(f"cannot read the OpenAPI document of {service} in {env.name} at {url}: {e}",
                              fix=f"is {env.name} up? `upgrade-infra env status {env.name}`") from None


def load_document(path: Path) -> dict[str, Any]:
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise BadInput(f"cannot read OpenAPI document {path}: {e.strerror}", fix="check the path") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        from ruamel.yaml import YAML

        doc = YAML(typ="safe").load(text)
    if not isinstance(doc, dict) or "paths" not in doc:
        raise BadInput(f"{path} is not an OpenAPI document (no 'paths')", fix="save /openapi.json of the service")
    return doc


# -- comparison -------------------------------------------------------------------------------------
class _Resolver:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def __call__(self, node: Any, depth: int = 0) -> Any:
        while isinstance(node, dict) and "$ref" in node and depth < MAX_DEPTH:
            ref = node["$ref"]
            if not ref.startswith("#/"):
                return {}
            target: Any = self.doc
            for part in ref[2:].split("/"):
                target = target.get(part.replace("~1", "/").replace("~0", "~"), {}) if isinstance(target, dict) else {}
            node, depth = target, depth + 1
        return node if isinstance(node, dict) else {}


def _types(schema: dict[str, Any], res: _Resolver) -> frozenset[str]:
    s = res(schema)
    if "type" in s:
        t = s["type"]
        return frozenset(t if isinstance(t, list) else [t])
    out: set[str] = set()
    for key in ("anyOf", "oneOf"):
        for sub in s.get(key, []):
            out |= _types(sub, res)
    return frozenset(out)


def _props(schema: dict[str, Any], res: _Resolver) -> tuple[dict[str, Any], set[str]]:
    s = res(schema)
    props, required = dict(s.get("properties", {})), set(s.get("required", []))
    for sub in s.get("allOf", []):
        p, r = _props(sub, res)
        props.update(p)
        required |= r
    return props, required


def compare_schema(old: Any, new: Any, ro: _Resolver, rn: _Resolver, where: str, direction: str,
                   at: str = "", depth: int = 0) -> list[ApiChange]:
    """``direction``: 'request' (what clients send) or 'response' (what clients read)."""
    if depth > MAX_DEPTH:
        return []
    out: list[ApiChange] = []
    label = at or "(body)"
    to, tn = _types(old, ro), _types(new, rn)
    if to and tn and to != tn:
        out.append(ApiChange(True, where, f"{direction} {label}: type {'/'.join(sorted(to))} -> "
                                          f"{'/'.join(sorted(tn))}"))
        return out
    po, req_o = _props(old, ro)
    pn, req_n = _props(new, rn)
    for name in sorted(set(po) | set(pn)):
        path = f"{at}.{name}" if at else name
        facts = (name in po, name in pn, name in req_o, name in req_n)
        rule = next((r for r in FIELD_RULES[direction] if r[0](*facts)), None)
        if rule:
            out.append(ApiChange(rule[1], where, rule[2].format(path)))
        if name in po and name in pn:
            out += compare_schema(po[name], pn[name], ro, rn, where, direction, path, depth + 1)
    io, inew = ro(old).get("items"), rn(new).get("items")
    if io is not None and inew is not None:
        out += compare_schema(io, inew, ro, rn, where, direction, f"{at}[]", depth + 1)
    return out


def _json_schema(content: dict[str, Any] | None) -> dict[str, Any] | None:
    if not content:
        return None
    media = content.get("application/json") or next(iter(content.values()), {})
    return media.get("schema")


def _params(op: dict[str, Any], path_item: dict[str, Any], res: _Resolver) -> dict[tuple[str, str], dict]:
    out = {}
    for p in path_item.get("parameters", []) + op.get("parameters", []):
        p = res(p)
        out[(p.get("in", "?"), p.get("name", "?"))] = p
    return out


def compare_operation(old: dict, new: dict, old_item: dict, new_item: dict, ro: _Resolver, rn: _Resolver,
                      where: str) -> list[ApiChange]:
    out: list[ApiChange] = []
    po, pn = _params(old, old_item, ro), _params(new, new_item, rn)
    for key in sorted(set(po) | set(pn)):
        loc, name = key
        if key in pn and pn[key].get("required") and not (key in po and po[key].get("required")):
            out.append(ApiChange(True, where, f"{loc} parameter {name!r} is now required"))
        elif key in pn and key not in po:
            out.append(ApiChange(False, where, f"new optional {loc} parameter {name!r}"))
        elif key in po and key not in pn:
            out.append(ApiChange(loc == "path", where, f"{loc} parameter {name!r} removed"))
        if key in po and key in pn:
            out += compare_schema(po[key].get("schema", {}), pn[key].get("schema", {}), ro, rn, where,
                                  "request", f"{loc} parameter {name}")
    bo, bn = ro(old.get("requestBody", {})), rn(new.get("requestBody", {}))
    if bn.get("required") and not bo.get("required"):
        out.append(ApiChange(True, where, "request body is now required"))
    so, sn = _json_schema(bo.get("content")), _json_schema(bn.get("content"))
    if so is not None and sn is not None:
        out += compare_schema(so, sn, ro, rn, where, "request")
    ok_old = {c: r for c, r in old.get("responses", {}).items() if str(c).startswith("2")}
    ok_new = {c: r for c, r in new.get("responses", {}).items() if str(c).startswith("2")}
    for code in sorted(ok_old):
        if code not in ok_new:
            out.append(ApiChange(True, where, f"success response {code} removed"
                                 + (f" (now {', '.join(sorted(ok_new))})" if ok_new else "")))
            continue
        so, sn = _json_schema(ro(ok_old[code]).get("content")), _json_schema(rn(ok_new[code]).get("content"))
        if so is not None and sn is not None:
            out += compare_schema(so, sn, ro, rn, f"{where} -> {code}", "response")
    return out


def diff_documents(old: dict[str, Any], new: dict[str, Any]) -> list[ApiChange]:
    ro, rn = _Resolver(old), _Resolver(new)
    out: list[ApiChange] = []
    paths_o, paths_n = old.get("paths", {}), new.get("paths", {})
    for path in sorted(set(paths_o) | set(paths_n)):
        io, inew = paths_o.get(path), paths_n.get(path)
        if inew is None:
            out.append(ApiChange(True, path, "path removed"))
            continue
        if io is None:
            out.append(ApiChange(False, path, "new path"))
            continue
        for m in METHODS:
            where = f"{m.upper()} {path}"
            if m in io and m not in inew:
                out.append(ApiChange(True, where, "operation removed"))
            elif m in inew and m not in io:
                out.append(ApiChange(False, where, "new operation"))
            elif m in io:
                out += compare_operation(io[m], inew[m], io, inew, ro, rn, where)
    return out


def api_diff(service: str, current: dict[str, Any], candidate: dict[str, Any], current_label: str = "current",
             candidate_label: str = "candidate") -> ApiDiff:
    return ApiDiff(service, current_label, candidate_label, diff_documents(current, candidate))


def compare(env: Environment, service: str, *, candidate_env: Environment | None = None,
            candidate_file: Path | None = None, current_file: Path | None = None) -> ApiDiff:
    """The current document (``env``'s running service, or a file) against the candidate's (a staging
    environment running the candidate version, or a saved document)."""
    if (candidate_env is None) == (candidate_file is None):
        raise BadInput("give exactly one candidate: a staging environment or a saved OpenAPI document",
                       fix="pass --candidate-env STAGING or --candidate-file FILE")
    env.manifest.service(service)
    current = load_document(current_file) if current_file else fetch_openapi(env, service)
    cur_label = str(current_file) if current_file else f"{env.name} ({service} {env.record.versions.get(service)})"
    if candidate_env is not None:
        cand = fetch_openapi(candidate_env, service)
        cand_label = f"{candidate_env.name} ({service} {candidate_env.record.versions.get(service)})"
    else:
        cand, cand_label = load_document(candidate_file), str(candidate_file)
    return api_diff(service, current, cand, cur_label, cand_label)
