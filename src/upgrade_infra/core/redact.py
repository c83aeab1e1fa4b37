"""Secret scrubbing for anything the tool writes: journal, history, logs, reports, notebooks, the site.

Known values come from :mod:`upgrade_infra.stack.secrets` (declared secrets, generated passwords) and from
environment variables whose *name* says they hold a secret (``*_TOKEN``, ``*PASSWORD*``…), which are
registered when a service's environment is rendered. Patterns catch ``password=…`` in conninfo
strings and ``user:password@`` in URLs whatever their value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "«redacted»"
_known: set[str] = set()
MIN_LEN = 6  # shorter values would redact ordinary words
# password=… in conninfo strings and user:password@ in URLs, whatever their value
_PATTERNS = [re.compile(r"(password=)[^\s&'\"]+"), re.compile(r"(://[^:/@\s]+:)[^@\s/]+(@)")]
# environment variable names whose values are secrets
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL", re.I)


def register(value: str | None) -> None:
    if value and len(value) >= MIN_LEN:
        _known.add(value)


def register_env(env: Mapping[str, str]) -> None:
    """Register the values of variables whose names say they are secrets (``PA_SECRET_KEY``, ``X_TOKEN``…)."""
    for k, v in env.items():
        if SECRET_NAME.search(k):
            register(v)


def known() -> frozenset[str]:
    return frozenset(_known)


def scrub(text: str, extra: Iterable[str] = ()) -> str:
    for v in sorted(set(_known) | {e for e in extra if e and len(e) >= MIN_LEN}, key=len, reverse=True):
        text = text.replace(v, MASK)
    text = _PATTERNS[0].sub(r"\1" + MASK, text)
    return _PATTERNS[1].sub(r"\1" + MASK + r"\2", text)


def scrub_obj(obj: Any, extra: Iterable[str] = ()) -> Any:
    """``obj`` (dicts, lists, strings: a JSON-like record) with every string scrubbed; keys are kept."""
    extra = tuple(extra)
    if isinstance(obj, str):
        return scrub(obj, extra)
    if isinstance(obj, Mapping):
        return {k: scrub_obj(v, extra) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [scrub_obj(v, extra) for v in obj]
    return obj
