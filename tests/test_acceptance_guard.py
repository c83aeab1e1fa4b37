"""The acceptance run re-creates environments from scratch: it must refuse anything not disposable."""

from __future__ import annotations

import pytest

from upgrade_infra.core.errors import RefusedToTouchProduction
from upgrade_infra.docsite import acceptance


def test_production_is_never_recreated(pa_stack):
    with pytest.raises(RefusedToTouchProduction, match="not declared disposable"):
        acceptance.provision(pa_stack, "production")
    assert pa_stack.state.env_names() == []  # nothing created or destroyed


def test_unknown_environment_is_refused(pa_stack):
    with pytest.raises(RefusedToTouchProduction):
        acceptance.provision(pa_stack, "nope")


def test_reference_acceptance_environment_is_disposable(pa_stack):
    assert pa_stack.manifest.environments["acceptance"].disposable
    assert not pa_stack.manifest.environments["production"].disposable
