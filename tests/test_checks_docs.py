"""The check-kind reference documents every kind and every field of its config."""

from __future__ import annotations

import re

from upgrade_infra.validation.checks import KINDS
from upgrade_infra.validation.checks.base import KindConfig
from upgrade_infra.validation.checks.request import RequestSpec

from .conftest import REPO

DOC = (REPO / "docs" / "testing" / "check-kinds.md").read_text()


def _section(kind: str) -> str:
    m = re.search(rf"^### {kind}\n(.*?)(?=^### |^## )", DOC, re.S | re.M)
    assert m, f"docs/testing/check-kinds.md has no section for kind {kind!r}"
    return m.group(1)


def test_every_kind_and_field_is_documented():
    shared = set(KindConfig.model_fields) | set(RequestSpec.model_fields)
    for name, kind in KINDS.items():
        text = _section(name)
        assert f"kind: {name}" in text, f"{name}: no example"
        for field, info in kind.config.model_fields.items():
            key = info.alias or field
            if field in shared and field != "timeout_s" and name not in ("http", "browser"):
                continue  # request fields are documented once under http
            assert f"`{key}" in text or f"{key}:" in text, f"kind {name}: field {key!r} undocumented"
