"""Splitting and joining person names (mirrors the r110 SQL backfill)."""
from __future__ import annotations


def split_full_name(full_name: str) -> tuple[str, str]:
    """Split on the first run of whitespace: ``"Mary Ann Smith" -> ("Mary", "Ann Smith")``.

    A single word becomes the first name with an empty last name; surrounding
    whitespace is ignored.
    """
    parts = (full_name or "").strip().split(None, 1)
    if not parts:
        return "", ""
    return parts[0], parts[1].strip() if len(parts) > 1 else ""


def join_name(first_name: str, last_name: str) -> str:
    return f"{first_name} {last_name}".strip()
