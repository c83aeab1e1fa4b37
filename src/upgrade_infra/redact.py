"""Secret scrubbing for anything written to reports, notebooks or the site."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "«redacted»"
_known: set[str] = set()
MIN_LEN = 6  # shorter values would redact ordinary words
# password=… in conninfo strings and user:password@ in URLs, whatever their value
_PATTERNS = [re.compile(r"(password=)[^\s&'\"]+"), re.compile(r"(://[^:/@\s]+:)[^@\s/]+(@)")]


def register(value: str | None) -> None:
    if value and len(value) >= MIN_LEN:
        _known.add(value)


def known() -> frozenset[str]:
    return frozenset(_known)


def scrub(text: str, extra: Iterable[str] = ()) -> str:
    for v in sorted(set(_known) | {e for e in extra if e and len(e) >= MIN_LEN}, key=len, reverse=True):
        text = text.replace(v, MASK)
    text = _PATTERNS[0].sub(r"\1" + MASK, text)
    return _PATTERNS[1].sub(r"\1" + MASK + r"\2", text)
