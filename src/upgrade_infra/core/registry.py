"""One registry type for every extension point, keyed by the name a user writes in YAML or on the command line.

Every extension point (backends, restore-point strategies, sync methods, check kinds, recovery
handlers) is a :class:`Registry` with a Python entry-point group. The built-ins are registered
through the same entry points as a third-party package (``[project.entry-points."<group>"]`` in
``pyproject.toml``), so adding a backend or a check kind never means editing this package::

    [project.entry-points."upgrade_infra.check_kinds"]
    ldap = "acme_checks.ldap"          # a module: importing it runs its @register_kind("ldap", ...)
    # or an object, added under the entry point's name: ldap = "acme_checks.ldap:LDAP_KIND"

Entry points are read once, on the first lookup (``get``, ``names``, ``in``, iteration), so importing
a registry costs nothing and a layer never imports the modules that register into it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any, Generic, TypeVar

from upgrade_infra.core.errors import BadInput, UnknownName

T = TypeVar("T")
O = TypeVar("O")  # noqa: E741 - what a decorator returns unchanged
_MISSING: Any = object()

#: entry-point group of each extension point (documented in docs/explanation/architecture.md)
GROUPS = {
    "backend": "upgrade_infra.backends",
    "restore-point strategy": "upgrade_infra.restore_strategies",
    "sync method": "upgrade_infra.sync_methods",
    "check kind": "upgrade_infra.check_kinds",
    "recovery handler": "upgrade_infra.recovery_handlers",
}
REINSTALL = "reinstall upgrade-infra (`pip install -e .` in a checkout): its entry points are read from the installed metadata"


class Registry(Generic[T]):
    """Items of one kind by name. ``adapt(name, obj)`` turns what is registered into what is stored
    (e.g. a strategy class into its instance); ``fix`` formats the fix of an unknown name from the
    known names (``{names}``)."""

    def __init__(self, what: str, group: str, *, adapt: Callable[[str, Any], T] | None = None,
                 fix: str = "use one of: {names}") -> None:
        self.what = what
        self.group = group
        self._adapt = adapt
        self._fix = fix
        self._items: dict[str, T] = {}
        self._broken: dict[str, str] = {}  # entry point -> why it could not be loaded
        self._loaded = False
        self._loading = False
        self._lock = threading.RLock()

    # -- registering ------------------------------------------------------------------------------
    def register(self, name: str) -> Callable[[O], O]:
        """Decorator: ``@REGISTRY.register("name")`` registers the decorated object (returned unchanged)."""
        def deco(obj: O) -> O:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: Any) -> T:
        item = self._adapt(name, obj) if self._adapt else obj
        self._items[name] = item
        return item

    def load(self) -> None:
        """Import what the entry points of :attr:`group` name (once)."""
        if self._loaded:
            return
        with self._lock:  # another thread waits here until every entry point is loaded
            if self._loaded or self._loading:
                return  # re-entered by a module this thread is importing: it sees what is registered so far
            self._loading = True
            try:
                self._load_entry_points()
            finally:
                self._loading = False
                self._loaded = True

    def _load_entry_points(self) -> None:
        for ep in sorted(entry_points(group=self.group), key=lambda e: e.name):
            if ep.name in self._items:
                continue
            try:
                obj = ep.load()
            except Exception as e:  # noqa: BLE001 - a broken plugin fails only when it is asked for
                self._broken[ep.name] = f"{ep.value}: {type(e).__name__}: {e}"
                continue
            if ep.name in self._items:
                continue  # a module whose decorators registered it
            if isinstance(obj, ModuleType):
                self._broken[ep.name] = f"{ep.value} was imported but registered no {self.what} {ep.name!r}"
            else:
                self.add(ep.name, obj)

    # -- looking up -------------------------------------------------------------------------------
    def get(self, name: str, default: Any = _MISSING) -> T:
        """The item registered as ``name``; an unknown name is :class:`UnknownName` (exit 2) naming the
        known ones (or ``default`` when one is given, as for a mapping)."""
        self.load()
        if name in self._items:
            return self._items[name]
        if default is not _MISSING:
            return default
        if name in self._broken:
            raise BadInput(f"the {self.what} {name!r} could not be loaded: {self._broken[name]}",
                           fix="reinstall the package that provides it, or fix the import error",
                           name=name, group=self.group)
        names = self.names()
        raise UnknownName(f"unknown {self.what} {name!r}",
                          fix=self._fix.format(names=", ".join(names)) if names else REINSTALL,
                          name=name, known=names, group=self.group)

    def names(self) -> list[str]:
        self.load()
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        self.load()
        return list(self._items.items())

    def values(self) -> list[T]:
        return [v for _, v in self.items()]

    def keys(self) -> list[str]:
        return [k for k, _ in self.items()]

    def __contains__(self, name: object) -> bool:
        self.load()
        return name in self._items

    def __getitem__(self, name: str) -> T:
        self.load()
        return self._items[name]

    def __setitem__(self, name: str, item: T) -> None:  # stores ``item`` as is (tests add kinds this way)
        self._items[name] = item

    def __delitem__(self, name: str) -> None:
        del self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        self.load()
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, {self.group!r}, {sorted(self._items)})"
