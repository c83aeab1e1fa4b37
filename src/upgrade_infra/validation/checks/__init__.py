"""Check kinds, keyed by the manifest's ``kind:`` name (one module per kind).

Each built-in kind module registers itself with :func:`register_kind`; the registry
(:mod:`upgrade_infra.stack.checkkinds`) imports them through the ``upgrade_infra.check_kinds``
entry points (``pyproject.toml``), exactly as it imports a third-party package's kinds.
:func:`manifest_issues` validates every declared check when the manifest loads.
"""

from __future__ import annotations

from upgrade_infra.stack.checkkinds import KINDS, Kind, field_names, get_kind, manifest_issues, register_kind
from upgrade_infra.validation.checks.base import CheckContext, Issue, KindConfig, Outcome, parse_config

__all__ = ["KINDS", "CheckContext", "Issue", "Kind", "KindConfig", "Outcome", "field_names", "get_kind",
           "manifest_issues", "parse_config", "register_kind"]
