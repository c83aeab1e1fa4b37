"""Isolation guards: a staging env sharing a port, a directory or a rendered value with production is refused."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from upgrade_infra.backends import open_environment
from upgrade_infra.core.errors import RefusedToTouchProduction
from upgrade_infra.core.state import EnvRecord
from upgrade_infra.operations.session import Session
from upgrade_infra.staging import isolation

from .conftest import write_stack


@pytest.fixture(scope="module")
def stack():
    """One copy of the reference stack for the module (nothing is started)."""
    root = Path(tempfile.mkdtemp(prefix="uinfra-iso-"))
    yield Session(write_stack(root / "stack"), root / "state")
    shutil.rmtree(root, ignore_errors=True)


def _staging(s: Session, name: str = "stage-t", port_base: int | None = None):
    m = s.manifest
    lo = m.staging.port_range[0]
    rec = EnvRecord(name=name, kind="staging", port_base=port_base or lo,
                    versions=dict(m.environments["production"].versions), created_at=time.time(),
                    source="production", ttl_s=3600)
    return open_environment(m, s.state, name, rec)


def test_a_proper_staging_env_passes_and_gets_the_overrides(stack):
    st, prod = _staging(stack), stack.env("production")
    assert isolation.check(st, [prod])["postgres_port"] == st.ports["postgres"]
    argv, env = isolation.rendered_service(st, "automations")
    assert env["PA_MAIL_ENABLED"] == "false" and env["PA_OUTBOUND_URL"] == ""
    assert f":{st.ports['postgres']}/" in env["DATABASE_URL"] and str(st.ports["automations"]) in argv
    assert env["ASSISTANT_URL"].endswith(f":{st.ports['assistant']}")


def test_refuses_production_ports(stack):
    prod = stack.env("production")
    st = _staging(stack, port_base=prod.port_base)
    with pytest.raises(RefusedToTouchProduction, match="belong to environment 'production'"):
        isolation.check(st, [prod])


def test_refuses_a_manifest_environment_name(stack):
    st = _staging(stack, name="production")
    with pytest.raises(RefusedToTouchProduction, match="one of the manifest's environments"):
        isolation.check_layout(st, [])


@pytest.mark.parametrize("value, expect", [
    ("http://127.0.0.1:{port}/hook", "production's port {port} (assistant)"),
    ("{prod_dir}/data/assistant", "production's directory"),
])
def test_refuses_an_override_pointing_at_production(stack, tmp_path, value, expect):
    prod = stack.env("production")
    values = {"port": prod.ports["assistant"], "prod_dir": prod.dir}
    yaml = YAML()
    data = yaml.load(stack.stack.read_text())
    data["staging"]["overrides"]["automations"]["PA_OUTBOUND_URL"] = value.format(**values)
    variant = stack.stack.with_name(f"stack-{tmp_path.name}.yaml")
    with open(variant, "w") as f:
        yaml.dump(data, f)
    s = Session(variant, stack.state.root)
    with pytest.raises(RefusedToTouchProduction) as e:
        isolation.check(_staging(s), [s.env("production")])
    assert expect.format(**values) in e.value.message
    assert "staging.overrides.automations.PA_OUTBOUND_URL" in e.value.fix
