"""Typed results: what the library's operations return, to read by attribute.

Upgrade, rollback, resume, staging create/sync/reset/destroy, validation, migration test, restore-point
create, ``env up``/``down`` and site publish each return a dataclass subclassing :class:`Result`, defined
next to the operation that produces it (``operations/results.py``, ``staging/results.py``, …)::

    res = upgrade.upgrade(env, {"assistant": "1.1.0"})
    res.outcome, res.total_s, res.rollback.quarantine.rows_new_total   # attributes, typed
    res.verdict    # one line for a person: "upgrade of production rolled back to rp-… in 2.1 s, verified, …"
    res.ok         # did it do what was asked
    res.to_dict()  # the JSON document ``--json`` prints (same keys and values as ever)

``to_dict`` is built from the dataclass fields, in their order: a field's JSON key is its name unless
its metadata says otherwise (:func:`key`), a field made with :func:`optional` is left out while it is
``None`` (keys that only some outcomes carry), one made with :func:`hidden` is never in the document,
and nested results are turned into their own documents.

Scripts written when the results were dicts keep working: ``res["total_s"]``, ``res.get("error")`` and
``"quarantine" in res`` read the same document (the docs quote ``rep["verdict"]`` of a migration
test). The package itself reads attributes.

The first argument of every library entry point (this layer's rule, stated in each module):
an :class:`~upgrade_infra.backends.Environment` when the operation acts on one environment that
exists (upgrade, rollback, resume, validate, restore points); a
:class:`~upgrade_infra.operations.session.Session` when it finds, creates or opens environments by
name, or may act on several (staging, migration test, site publish).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

_KEY, _OPTIONAL, _HIDDEN = "result_key", "result_optional", "result_hidden"


def key(name: str, **kw: Any) -> Any:
    """A field whose JSON key is ``name`` (e.g. ``"reset"`` for a staging reset's environment)."""
    return dataclasses.field(metadata={_KEY: name}, **kw)


def optional(default: Any = None, **kw: Any) -> Any:
    """A field left out of the document while it is ``None`` (only some outcomes carry it)."""
    return dataclasses.field(default=default, metadata={_OPTIONAL: True, **kw.pop("metadata", {})}, **kw)


def hidden(**kw: Any) -> Any:
    """An attribute that is not part of the JSON document."""
    kw.setdefault("repr", False)
    kw.setdefault("compare", False)
    return dataclasses.field(metadata={_HIDDEN: True}, **kw)


def plain(value: Any) -> Any:
    """``value`` with every nested result (or object with ``to_dict``) turned into its document."""
    if isinstance(value, Result):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(plain(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type) and callable(getattr(value, "to_dict", None)):
        return value.to_dict()
    return value


@dataclasses.dataclass
class Result:
    """Base of the operations' results (see the module docstring)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.metadata.get(_HIDDEN):
                continue
            v = getattr(self, f.name)
            if v is None and f.metadata.get(_OPTIONAL):
                continue
            out[f.metadata.get(_KEY, f.name)] = plain(v)
        return out

    @property
    def ok(self) -> bool:
        """Whether the operation did what was asked (subclasses say what that means)."""
        return True

    @property
    def verdict(self) -> str:
        """One line for a person."""
        return f"{type(self).__name__}: {'ok' if self.ok else 'failed'}"

    def __str__(self) -> str:
        return self.verdict

    # -- reading the document by key, as when results were dicts -----------------------------------
    def __getitem__(self, name: str) -> Any:
        return self.to_dict()[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.to_dict().get(name, default)

    def __contains__(self, name: object) -> bool:
        return name in self.to_dict()

    def keys(self) -> Any:
        return self.to_dict().keys()

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())


def secs(v: float | None) -> str:
    """``2.13`` -> ``"2.1 s"`` (verdict lines)."""
    return "? s" if v is None else f"{v:.1f} s"


def plural(n: int | None, word: str) -> str:
    n = n or 0
    return f"{n} {word}" + ("" if n == 1 else "s")


def versions_text(v: Mapping[str, str] | None) -> str:
    return ", ".join(f"{k}={x}" for k, x in (v or {}).items())


__all__ = ["Result", "hidden", "key", "optional", "plain", "plural", "secs", "versions_text"]
