"""Assertions on JSON values (HTTP bodies, SQL rows, workflow outputs), addressed by JSON path.

One assertion is a ``path`` plus exactly one operator::

    {path: $.status, equals: success}
    {path: "$[*].id", min_length: 1}
    {path: $.reply, matches: "I remember: .*"}

Pure: :func:`evaluate` returns a problem description, or None when the assertion holds.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext import parse as jp_parse
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

OPS = ("equals", "not_equals", "contains", "not_contains", "matches", "exists", "one_of",
       "min_length", "max_length", "gt", "gte", "lt", "lte", "type")
TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list,
         "object": dict, "null": type(None)}


@lru_cache(maxsize=512)
def compile_path(path: str):
    try:
        return jp_parse(path)
    except (JsonPathLexerError, JsonPathParserError, Exception) as e:  # noqa: BLE001 - jsonpath raises plain Exception too
        raise ValueError(f"invalid JSON path {path!r}: {str(e).splitlines()[0]}") from None


def find(data: Any, path: str) -> list[Any]:
    return [m.value for m in compile_path(path).find(data)]


def extract(data: Any, path: str) -> Any:
    """The value at ``path``: one match -> the value, several -> a list, none -> KeyError."""
    found = find(data, path)
    if not found:
        raise KeyError(path)
    return found[0] if len(found) == 1 else found


class JsonAssert(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str
    equals: Any = None
    not_equals: Any = None
    contains: Any = None
    not_contains: Any = None
    matches: str | None = None
    exists: bool | None = None
    one_of: list[Any] | None = None
    min_length: int | None = None
    max_length: int | None = None
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None
    type: str | None = None

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        compile_path(v)
        return v

    @field_validator("matches")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as e:
                raise ValueError(f"invalid regular expression: {e}") from None
        return v

    @field_validator("type")
    @classmethod
    def _type(cls, v: str | None) -> str | None:
        if v is not None and v not in TYPES:
            raise ValueError(f"unknown type {v!r}; use one of: {', '.join(TYPES)}")
        return v

    @model_validator(mode="after")
    def _one_op(self) -> JsonAssert:
        ops = [o for o in OPS if o in self.model_fields_set]
        if len(ops) != 1:
            raise ValueError(f"give exactly one operator besides 'path' (one of: {', '.join(OPS)}); got "
                             f"{', '.join(ops) or 'none'}")
        return self

    @property
    def op(self) -> str:
        return next(o for o in OPS if o in self.model_fields_set)

    def describe(self) -> str:
        return f"{self.path} {self.op} {_short(getattr(self, self.op))}"


def _short(v: Any, n: int = 80) -> str:
    text = v if isinstance(v, str) else json.dumps(v, default=str)
    return text if len(text) <= n else text[: n - 1] + "…"


def evaluate(a: JsonAssert, data: Any) -> str | None:
    found = find(data, a.path)
    op, want = a.op, getattr(a, a.op)
    if op == "exists":
        return None if bool(found) == want else f"{a.path}: expected {'a value' if want else 'nothing'}, " \
                                                f"found {_short(found) if found else 'nothing'}"
    if not found:
        return f"{a.path}: no value (expected {op} {_short(want)})"
    got = found[0] if len(found) == 1 else found
    ok = _apply(op, got, want)
    return None if ok else f"{a.path}: expected {op} {_short(want)}, got {_short(got)}"


def _apply(op: str, got: Any, want: Any) -> bool:
    if op == "equals":
        return got == want
    if op == "not_equals":
        return got != want
    if op in ("contains", "not_contains"):
        hit = (str(want) in got) if isinstance(got, str) else (want in got if isinstance(got, list | dict) else False)
        return hit if op == "contains" else not hit
    if op == "matches":
        return re.search(want, got if isinstance(got, str) else json.dumps(got, default=str)) is not None
    if op == "one_of":
        return got in want
    if op in ("min_length", "max_length"):
        if not hasattr(got, "__len__"):
            return False
        return len(got) >= want if op == "min_length" else len(got) <= want
    if op == "type":
        return isinstance(got, TYPES[want]) and not (want in ("integer", "number") and isinstance(got, bool))
    try:
        x = float(got)
    except (TypeError, ValueError):
        return False
    return {"gt": x > want, "gte": x >= want, "lt": x < want, "lte": x <= want}[op]


def evaluate_all(asserts: list[JsonAssert], data: Any) -> list[str]:
    return [p for a in asserts if (p := evaluate(a, data))]
