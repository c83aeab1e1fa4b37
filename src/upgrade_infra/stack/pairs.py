"""``name=value`` arguments: the one parser behind ``--to SERVICE=VERSION`` (upgrade, migrate test),
``--versions SERVICE=VERSION`` (stage create/sync) and ``-p NAME=VALUE`` (runbook run).

Each item may hold several pairs separated by commas (``--versions a=1,b=2``; a version or a
service name never contains a comma). A pair without ``=``, or with an empty side, is BadInput
(exit 2) naming the option and the item.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from upgrade_infra.core.errors import BadInput
from upgrade_infra.stack.manifest import check_name

if TYPE_CHECKING:
    from upgrade_infra.stack.manifest import Manifest


def split_pair(item: str, *, message: str, fix: str, strict: bool = True) -> tuple[str, str]:
    """``"k=v"`` -> ``("k", "v")``, split at the first ``=``; BadInput(``message``) without one.
    ``strict`` (names): both sides stripped and required. Not strict (``-p`` values): kept as
    written, either side may be empty (the caller says what an empty name is)."""
    key, sep, value = item.partition("=")
    if strict:
        key, value = key.strip(), value.strip()
    if not sep or (strict and (not key or not value)):
        raise BadInput(message, fix=fix)
    return key, value


def parse_versions(items: Iterable[str], *, option: str = "--to", manifest: Manifest | None = None,
                   required: bool = False) -> dict[str, str]:
    """``["assistant=1.1.0", "automations=1.1.0,ledger=2"]`` -> ``{service: version}``.

    Names are checked against the name patterns (they become paths); with ``manifest``, each pair is
    also checked against the services and versions it declares (UnknownName naming the choices).
    ``required``: no pair at all is BadInput."""
    out: dict[str, str] = {}
    for item in (p for raw in items for p in raw.split(",") if p.strip()):
        svc, ver = split_pair(item, message=f"bad {option} value {item.strip()!r}",
                              fix=f"write {option} SERVICE=VERSION, e.g. {option} assistant=1.1.0")
        if manifest is not None:
            manifest.version_of(svc, ver)
        out[check_name("service", svc, option)] = check_name("version", ver, option)
    if required and not out:
        raise BadInput("no target versions given", fix=f"add {option} SERVICE=VERSION (repeatable)")
    return out
