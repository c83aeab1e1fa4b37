"""``--json`` keeps its shape: the keys every operation's JSON result carries, on the reference
stack, compared with a snapshot taken before the results became dataclasses (``tests/data/json_keys.json``).

Scripts parse these documents: a key renamed, dropped or moved by a change of the library's result
types breaks them. Write the snapshot again (only for a deliberate change of the JSON) with
``UPGRADE_INFRA_WRITE_JSON_KEYS=1``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from upgrade_infra.cli import main

from ..conftest import REPO

SNAPSHOT = REPO / "tests" / "data" / "json_keys.json"
# maps keyed by data (service, database, table, port names): their keys are not the document's shape
DATA_KEYED = {"versions", "from_versions", "to_versions", "source_versions", "ports", "services_s", "per_table",
              "databases", "sizes", "thresholds", "overhead", "schema", "counts_by_table", "seconds_by_table",
              "stopped", "ready_s", "files", "data_dirs", "services"}


def key_paths(doc: Any, prefix: str = "", depth: int = 3) -> set[str]:
    """``{"a": {"b": 1}, "c": [{"d": 2}]}`` -> {"a", "a.b", "c", "c[].d"}, down to ``depth`` levels."""
    out: set[str] = set()
    if depth == 0:
        return out
    if isinstance(doc, dict):
        for k, v in doc.items():
            p = f"{prefix}.{k}" if prefix else str(k)
            out.add(p)
            if k not in DATA_KEYED:
                out |= key_paths(v, p, depth - 1)
    elif isinstance(doc, list):
        for x in doc:
            out |= key_paths(x, f"{prefix}[]", depth)
    return out


def run(s_args: list[str], capsys, *args: str, code: int = 0) -> dict:
    capsys.readouterr()
    rc = main([*s_args, "--json", *args])
    out = capsys.readouterr().out
    assert rc == code, out
    return json.loads(out)


def test_json_results_keep_their_keys(pa_stack, capsys):
    s = pa_stack
    g = ["--stack", str(s.stack), "--state-dir", str(s.state_dir)]
    to = ["--to", "assistant=1.1.0", "--to", "automations=1.1.0"]
    docs = {
        "env up": run(g, capsys, "env", "up", "production", "--seed-mb", "2"),
        "snapshot create": run(g, capsys, "snapshot", "create", "production", "--label", "keys"),
        "validate": run(g, capsys, "validate", "production", "--suite", "health"),
        "stage create": run(g, capsys, "stage", "create", "stg"),
        "stage sync": run(g, capsys, "stage", "sync", "stg"),
        "stage reset": run(g, capsys, "stage", "reset", "stg"),
        "migrate test": run(g, capsys, "migrate", "test", "--on", "stg", *to, "--skip", "lint", "--skip",
                            "downgrade", "--skip", "validate", "--skip", "compatibility"),
        "stage destroy": run(g, capsys, "stage", "destroy", "stg"),
        "upgrade": run(g, capsys, "upgrade", "production", *to, "--watch", "0"),
        "rollback": run(g, capsys, "rollback", "production"),
        "upgrade rolled back": run(g, capsys, "upgrade", "production", "--to", "assistant=1.2.0", "--to",
                                   "automations=1.2.0", "--watch", "0", code=1),
        "resume": run(g, capsys, "resume", "production"),
        "env down": run(g, capsys, "env", "down", "production"),
    }
    got = {cmd: sorted(key_paths(d)) for cmd, d in docs.items()}
    if os.environ.get("UPGRADE_INFRA_WRITE_JSON_KEYS"):
        SNAPSHOT.write_text(json.dumps(got, indent=1) + "\n")
        pytest.skip(f"wrote {SNAPSHOT}")
    want = json.loads(Path(SNAPSHOT).read_text())
    differ = {cmd: sorted(p for p in set(got[cmd]) ^ set(want[cmd]) if not _in_a_list(p, got[cmd], want[cmd]))
              for cmd in want}
    assert not any(differ.values()), differ


def _in_a_list(path: str, a: list[str], b: list[str]) -> bool:
    """A key of the items of a list both documents have: an empty list in one run (no blocked
    session sampled, no step failed) is the data, not the shape."""
    if "[]" not in path:
        return False
    head = path[:path.index("[]")]
    return head in a and head in b
