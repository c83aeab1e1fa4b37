"""Bad checks fail when the manifest loads, naming file:line, the check and the field."""

from __future__ import annotations

import pytest

from upgrade_infra.core.errors import ManifestError
from upgrade_infra.stack.manifest import load_manifest

from .checks_support import write_tiny

WEB = {"service": "web"}
CASES = [
    ({"kind": "htttp", **WEB, "path": "/x"}, "checks.0.kind", "unknown check kind 'htttp'", "use one of: browser"),
    ({"kind": "http", **WEB, "pth": "/x"}, "checks.0.pth", "unknown field 'pth' for kind 'http'", "did you mean 'path'"),
    ({"kind": "http", **WEB, "path": "/x", "expect": {"json": [{"path": "$..[", "equals": 1}]}},
     "checks.0.expect.json.0.path", "invalid JSON path '$..['", None),
    ({"kind": "http", "service": "nope", "path": "/x"}, "checks.0.service", "unknown service 'nope'", "use one of: web"),
    ({"kind": "http", "path": "/x"}, "checks.0", "needs a target", None),
    ({"kind": "sql", "database": "zzz", "query": "select 1"}, "checks.0.database", "unknown database 'zzz'", None),
    ({"kind": "sql", "query": "select 1"}, "checks.0.database", "Field required", "add 'database:'"),
    ({"kind": "workflow", **WEB, "steps": [{"path": "/j/{jid}"}, {"path": "/x", "save": {"jid": "$.id"}}]},
     "checks.0.steps.0.path", "unknown placeholder {jid}", "save it in an earlier step"),
    ({"kind": "workflow", **WEB, "steps": [{"path": "/x", "save": {"jid": "$["}}]},
     "checks.0.steps.0.save", "invalid JSON path", None),
    ({"kind": "workflow", **WEB, "steps": []}, "checks.0.steps", "at least 1 item", None),
    ({"kind": "http", **WEB, "path": "/x", "expect": {"schema": {"type": "nonsense"}}},
     "checks.0.expect.schema", "invalid JSON Schema", None),
    ({"kind": "http", **WEB, "path": "/{services.web.urll}"}, "checks.0.path", "{services.web.urll}", None),
    ({"kind": "browser", **WEB, "path": "/x", "expect": {"txt": ["a"]}}, "checks.0.expect.txt",
     "unknown field 'txt'", "did you mean 'text'"),
    ({"kind": "performance", **WEB, "path": "/x", "requests": 0}, "checks.0.requests", "greater than or equal to 1",
     None),
    ({"kind": "command", "command": "echo 'unbalanced"}, "checks.0.command", "cannot split", None),
    ({"kind": "command", "command": "pg_dump {db.app.url}"}, "checks.0.command",
     "{db.app.url} puts a secret on the command line", "$UPGRADE_INFRA_DB_<NAME>_URL"),
    ({"kind": "pytest", "path": "no/such/dir"}, "checks.0.path", "does not exist", None),
    ({"kind": "http", **WEB, "path": "/x", "suite": "Bad Suite"}, "checks.0.suite", "bad suite name", None),
]


@pytest.mark.parametrize("check, field, problem, fix", CASES, ids=[c[1] + ":" + c[2][:20] for c in CASES])
def test_bad_check_is_named(tmp_path, check, field, problem, fix):
    path = write_tiny(tmp_path, [{"name": "my check", **check}])
    with pytest.raises(ManifestError) as ei:
        load_manifest(path)
    text = ei.value.one_line()
    assert text.startswith(f"{path}:") and f": {field}: " in text, text
    assert "check 'my check'" in text and problem in text, text
    if fix:
        assert fix in text
    assert ei.value.issues[0].line and ei.value.issues[0].line > 1


def test_duplicate_names(tmp_path):
    c = {"name": "same", "kind": "http", "service": "web", "path": "/x"}
    with pytest.raises(ManifestError, match="check 'same': duplicate name"):
        load_manifest(write_tiny(tmp_path, [c, c]))


def test_good_checks_load(tmp_path):
    m = load_manifest(write_tiny(tmp_path, [
        {"name": "a", "kind": "http", "service": "web", "path": "/items", "smoke": True},
        {"name": "b", "kind": "workflow", "service": "web", "steps": [
            {"method": "POST", "path": "/jobs", "save": {"jid": "$.job_id"}},
            {"path": "/jobs/{jid}", "until": [{"path": "$.status", "equals": "done"}]},
            {"sql": {"database": "app", "query": "SELECT %(j)s::int AS j", "params": {"j": "{jid}"}}}]},
    ]))
    assert [c.name for c in m.checks] == ["a", "b"]
    assert m.checks[0].smoke and m.checks[1].suite == "health"


def test_reference_stack_checks_load():
    from .conftest import PA_STACK

    m = load_manifest(PA_STACK / "stack.yaml")
    kinds = {c.kind for c in m.checks}
    assert {"http", "sql", "workflow", "performance", "browser"} <= kinds
    assert {"api", "workflow", "integration", "performance", "ux"} <= {c.suite for c in m.checks}
