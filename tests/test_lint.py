"""Migration lint: squawk argv builders (pure), finding parsing, and real squawk on real offline SQL."""

from __future__ import annotations

import json

import pytest

from upgrade_infra.core.errors import BadInput
from upgrade_infra.migration import lint


def test_squawk_argv_exact():
    assert lint.squawk_argv(["a.sql"], squawk="/v/bin/squawk", pg_version="15.0", exclude=("x", "y"),
                            include=("require-table-schema",), assume_in_transaction=True) == [
        "/v/bin/squawk", "--reporter", "json", "--pg-version", "15.0", "--exclude", "x,y",
        "--include", "require-table-schema", "--assume-in-transaction", "a.sql"]
    assert lint.squawk_argv([], exclude=(), stdin_name="m.sql") == [
        "squawk", "--reporter", "json", "--stdin-filepath", "m.sql"]
    assert lint.sql_command_context("1.0.0", "1.1.0") == {"from_version": "1.0.0", "to_version": "1.1.0"}


def test_parse_findings_lines_and_statements():
    text = "BEGIN;\n\nCREATE INDEX ix ON t\n  (c);\nCOMMIT;\n"
    raw = [{"line": 2, "line_end": 3, "level": "Warning", "message": "m", "help": "h",
            "rule_name": "require-concurrent-index-creation"},
           {"line": 0, "level": "Warning", "message": "n", "rule_name": "prefer-robust-stmts"}]
    out = lint.parse_findings(json.dumps(raw), text)
    assert out[0] == {"line": 3, "rule": "require-concurrent-index-creation", "level": "Warning", "message": "m",
                      "help": "h", "statement": "CREATE INDEX ix ON t (c);", "lock_hazard": True}
    assert out[1]["statement"] == "BEGIN;" and out[1]["lock_hazard"] is False


def test_real_squawk_flags_lock_hazards():
    found = lint.lint_sql("BEGIN;\nCREATE INDEX ix ON messages (conversation_id);\n"
                          "ALTER TABLE messages ADD COLUMN k text DEFAULT md5(random()::text);\nCOMMIT;\n",
                          pg_version="15.0")
    rules = {f["rule"] for f in found}
    assert {"require-concurrent-index-creation", "adding-field-with-default"} <= rules
    assert not rules & set(lint.DEFAULT_EXCLUDE)
    assert lint.lint_sql("SELECT 1;\n") == []


def test_offline_sql_of_the_reference_stack(pa_stack):
    env = pa_stack.env("production")
    res = lint.lint(env, "assistant", "1.0.0", "1.1.0-locking")
    assert "ALTER TABLE messages ADD COLUMN search_key" in res.sql
    hazards = {(f["rule"], f["statement"].split(" (")[0]) for f in res.lock_hazards}
    assert ("adding-field-with-default",
            "ALTER TABLE messages ADD COLUMN search_key TEXT DEFAULT md5(random()::text);") in hazards
    assert any(r == "require-concurrent-index-creation" for r, _ in hazards)
    assert res.to_dict()["lock_hazards"] == len(res.lock_hazards)
    with pytest.raises(BadInput):
        lint.lint(env, "assistant", "1.0.0", "9.9.9")
