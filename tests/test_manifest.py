"""Manifest parsing: the reference manifests load; bad input names file, line, field and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from upgrade_infra.core.errors import BadInput, ManifestError
from upgrade_infra.stack.manifest import load_manifest, parse_duration

from .conftest import PA_STACK, REPO

REFERENCE = REPO / "docs" / "reference" / "stack.reference.yaml"


def test_reference_stack_loads():
    m = load_manifest(PA_STACK / "stack.yaml")
    assert m.start_order() == ["assistant", "automations"]
    assert set(m.postgres.databases) == {"assistant", "automations"}
    assert m.policies.rollback_budget_s == 300
    assert len(m.sha256) == 64


def test_documented_reference_manifest_loads():
    m = load_manifest(REFERENCE)
    assert m.services and m.environments


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "stack.yaml"
    p.write_text(text)
    return p


BASE = """\
name: demo
postgres:
  databases:
    app: {owner: web}
services:
  web:
    port: 1
    command: "{python} -m http.server {port}"
    versions: {"1.0": {}}
    health: {http: /}
environments:
  production:
    port_base: 27000
    versions: {web: "1.0"}
"""


def issue_of(tmp_path, text):
    with pytest.raises(ManifestError) as e:
        load_manifest(_write(tmp_path, text))
    return e.value.issues[0]


def test_typo_names_line_and_suggests(tmp_path):
    i = issue_of(tmp_path, BASE.replace("    port: 1\n", "    port: 1\n    comand: x\n"))
    assert (i.line, i.field) == (8, "services.web.comand")
    assert "did you mean 'command'" in i.fix


def test_unknown_placeholder(tmp_path):
    i = issue_of(tmp_path, BASE.replace("{port}", "{prot}"))
    assert i.field == "services.web.command" and i.line == 8 and "prot" in i.problem


def test_unknown_db_in_placeholder(tmp_path):
    text = BASE.replace('    health:', '    env: {DB: "{db.nope.url}"}\n    health:')
    i = issue_of(tmp_path, text)
    assert i.field == "services.web.env.DB" and "nope" in i.problem


def test_unknown_version_in_environment(tmp_path):
    i = issue_of(tmp_path, BASE.replace('{web: "1.0"}', '{web: "2.0"}'))
    assert i.field == "environments.production.versions.web" and "2.0" in i.problem and "1.0" in i.fix


def test_port_offset_collision_and_block_overlap(tmp_path):
    text = BASE + "  staging:\n    port_base: 27000\n    versions: {web: \"1.0\"}\n"
    i = issue_of(tmp_path, text)
    assert "overlap" in i.problem


def test_unknown_dependency_and_owner(tmp_path):
    text = BASE.replace("owner: web", "owner: webb")
    i = issue_of(tmp_path, text)
    assert i.field == "postgres.databases.app.owner" and i.line == 4


def test_dependency_cycle(tmp_path):
    text = BASE.replace("    port: 1\n", "    port: 1\n    depends_on: [web]\n")
    assert "cycle" in issue_of(tmp_path, text).problem


def test_yaml_syntax_error_names_line(tmp_path):
    i = issue_of(tmp_path, BASE.replace("    port: 1\n", "    port: [1\n"))
    assert i.field == "(syntax)" and i.line is not None


def test_missing_file_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match="not found"):
        load_manifest(tmp_path / "nope.yaml")


def test_durations():
    assert parse_duration("24h") == 86400 and parse_duration("90s") == 90
    with pytest.raises(BadInput):
        parse_duration("soon")
