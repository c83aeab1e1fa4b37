"""Output (issue 11, items 2 and 7): text from outside the tool is never read as Rich markup, and with
``--json`` stdout is exactly one JSON document for every command, on success and on failure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from upgrade_infra.cli import app, main
from upgrade_infra.operations.session import Session

from .conftest import REPO, stop_all, write_stack

TINY = REPO / "tests" / "data" / "tiny" / "stack.yaml"


def _leaves(cmd, path=()):
    """(command words, click command) for every leaf command of the Typer app."""
    subs = getattr(cmd, "commands", None)
    if subs is None:
        yield path, cmd
        return
    for name, c in sorted(subs.items()):
        yield from _leaves(c, (*path, name))


LEAVES = list(_leaves(typer.main.get_command(app)))


def _args_for(cmd, tmp: Path) -> list[str]:
    """Values for the required parameters of ``cmd`` that parse (the failure comes from elsewhere)."""
    out: list[str] = []
    for p in cmd.params:
        if not p.required:
            continue
        name = p.name or ""
        if "rp" in name or name == "from_":
            value = "rp-00000000"
        elif name in ("to",):
            value = "web=1.0"
        elif name in ("directory", "dir"):
            value = str(tmp / "nodir")
        elif name in ("service", "from_", "on"):
            value = "web"
        else:
            value = "nosuch"
        if p.param_type_name == "argument":
            out.append(value)
        else:
            out += [p.opts[0], value]
    return out


def test_walk_covers_every_command():
    names = {" ".join(p) for p, _ in LEAVES}
    assert {"env up", "rollback", "validate", "snapshot restore", "runbook run", "stage create", "migrate test",
            "api-diff", "status", "history", "site publish"} <= names
    assert len(names) >= 30


@pytest.mark.parametrize("words", [p for p, _ in LEAVES], ids=[" ".join(p) for p, _ in LEAVES])
def test_every_command_prints_one_json_document_on_failure(words, tmp_path, capsys, monkeypatch):
    """Every command, with --json, where the stack is missing and the state dir cannot be made; and the same
    command with an unknown option (a usage error): stdout parses as exactly one JSON document."""
    monkeypatch.chdir(tmp_path)  # runbook commands look for ./runbooks: there is none here
    cmd = dict(LEAVES)[words]
    blocker = tmp_path / "file"
    blocker.write_text("")
    base = ["--json", "--stack", str(tmp_path / "missing.yaml"), "--state-dir", str(blocker / "state")]
    for args in (base + [*words, *_args_for(cmd, tmp_path)], base + [*words, "--no-such-option"]):
        code = main(args)
        out = capsys.readouterr()
        doc = json.loads(out.out)  # exactly one document: a second one would make this raise
        assert isinstance(doc, dict | list), out.out
        if isinstance(doc, dict) and "error" in doc:
            assert doc["exit_code"] == code and code != 0 and doc["message"], doc
        assert "Traceback" not in out.err, out.err
    assert code == 2  # the usage error


def test_failed_check_after_a_result_is_still_one_document(private_tmp, capsys):
    """`env status` of an environment that is down prints its status and exits 1: one document, not two."""
    s = Session(write_stack(private_tmp / "stack", TINY), private_tmp / "state")
    try:
        code = main(["--json", "--stack", str(s.stack), "--state-dir", str(private_tmp / "state"),
                     "env", "status", "production"])
        out = capsys.readouterr().out
        assert code == 1
        doc = json.loads(out)
        assert doc["name"] == "production" and doc["healthy"] is False
    finally:
        stop_all(s)


def test_brackets_in_an_error_are_printed_verbatim(tmp_path):
    """A path (or a service's output) holding `[/etc/pa.conf]` is not Rich markup: no MarkupError, shown as is."""
    odd = tmp_path / "[" / "etc" / "pa.conf]" / "[bold]"
    odd.mkdir(parents=True)
    stack = odd / "stack.yaml"
    stack.write_text("name: demo\n")  # an invalid manifest: the error names the file
    assert "[/etc/pa.conf]" in str(stack)
    for extra in ([], ["--json"]):
        r = subprocess.run([sys.executable, "-m", "upgrade_infra", *extra, "--stack", str(stack), "env", "up",
                            "production"], capture_output=True, text=True, timeout=60)
        assert "MarkupError" not in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert r.returncode == 2, r.stderr
        assert f"{stack}:" in r.stderr.replace("\n", "")
    assert json.loads(r.stdout)["file"] == str(stack)


def test_service_output_with_markup_is_verbatim(capsys):
    from upgrade_infra.cli import _report

    line = "web not ready. Last log lines: cannot read [/etc/pa.conf] | [bold]x[/bold] | [red]"
    _report(line, {}, [])
    assert line in capsys.readouterr().err.replace("\n", "")
