"""`migrate test` on a release that creates and seeds a table, records its migration in an all-primary-key
table and rewrites a column: the failing rehearsal is recorded as failed in `history`, `--accept` writes the
declarations that would pass (columns, not whole tables), and the rehearsal with `--expect FILE` passes
with the new table and the inserted rows reported."""

from __future__ import annotations

import json
import os

from ruamel.yaml import YAML

from upgrade_infra.cli import main
from upgrade_infra.core.journal import history
from upgrade_infra.staging import lifecycle as staging

from ..conftest import running_stack
from .conftest import LEDGER


def _first_json(out: str) -> dict:
    return json.JSONDecoder().raw_decode(out)[0]  # a failing command prints its error document after the report


def _cli(s, capsys, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(["--stack", str(s.stack), "--state-dir", str(s.state.root), *args])
    return rc, capsys.readouterr().out


def test_accept_then_expect(capsys, tmp_path):
    os.environ.setdefault("COLUMNS", "250")
    with running_stack(LEDGER, "uinfra-accept-") as s:
        staging.create(s, "stg")
        accepted = tmp_path / "accepted.yaml"
        rc, out = _cli(s, capsys, "--json", "migrate", "test", "--on", "stg", "--to", "ledger=2.0",
                       "--skip", "compatibility", "--accept", str(accepted))
        rep = _first_json(out)
        assert rc == 1, rep["verdict"]
        assert all("accounts" in f for f in rep["verdict"]["failures"]), rep["verdict"]["failures"]
        tables = {t["table"]: t for t in rep["integrity"]["tables"]}
        assert tables["audit"]["ok"] and tables["audit"]["content"] == "new"
        assert tables["schema_version"]["ok"] and "1 row(s) inserted" in tables["schema_version"]["note"]
        assert rep["accept"]["written"], rep["accept"]
        doc = YAML(typ="safe").load(accepted.read_text())
        assert doc == {"expected_changes": {"2.0": {"ledger": ["accounts.balance", "accounts.currency"]}}}
        assert accepted.read_text().startswith("# Written by `upgrade-infra migrate test --accept`")
        last = [o for o in history(s.state, "stg") if o.kind == "migrate-test"][-1]
        assert last.outcome == "failed" and "accounts" in (last.error or "")

        rc, out = _cli(s, capsys, "--json", "migrate", "test", "--on", "stg", "--to", "ledger=2.0",
                       "--skip", "compatibility", "--expect", str(accepted))
        rep = _first_json(out)
        assert rc == 0, rep["verdict"]
        inserted = {(i["table"], i["rows"], i["table_new"]) for i in rep["integrity"]["inserted"]}
        assert ("audit", 2000, True) in inserted and ("schema_version", 1, False) in inserted
        acc = next(t for t in rep["integrity"]["tables"] if t["table"] == "accounts")
        assert acc["ok"] and acc["declared"] == ["balance", "currency"]  # by column: the rest still checked

        rc, out = _cli(s, capsys, "history", "stg")
        assert rc == 0
        rows = [ln for ln in out.splitlines() if "migrate-test" in ln]
        assert len(rows) == 2 and "failed" in rows[0] and "succeeded" in rows[1], out
