"""Every `upgrade-infra …` command quoted in docs/, README.md, CHANGELOG.md and the runbooks' markdown
cells is accepted by the real CLI (typer/click tree): commands, options, option values, arguments,
global options before the command. And the checker catches wrong commands when they are planted."""

from __future__ import annotations

import shutil

import pytest

from upgrade_infra.cli import doccheck

from .conftest import REPO


@pytest.fixture(scope="module")
def cli():
    return doccheck.cli_root()


def test_every_quoted_command_matches_the_cli():
    quoted, findings = doccheck.check(REPO)
    assert len(quoted) > 100  # the docs quote many commands: the extraction found them
    assert {q.file.split(" (")[0] for q in quoted} >= {"README.md", "docs/rollback/how-to.md",
                                                        "runbooks/06-rollback.ipynb"}
    assert not findings, "\n".join(str(f) for f in findings)


@pytest.mark.parametrize(("command", "problem"), [
    ("upgrade-infra history production --json", "--json is a global option: put it before the command"),
    ("upgrade-infra env status", "needs argument(s) NAME"),
    ("upgrade-infra stage create staging --strategy dump --dump-dir /big", "has no option --dump-dir"),
    ("upgrade-infra rollbak production", "has no command 'rollbak'"),
    ("upgrade-infra rollback production extra", "takes 1 argument(s), got 2"),
    ("upgrade-infra upgrade production --to", "needs a value"),
    ("upgrade-infra --verbose status", "has no option --verbose"),
    ("upgrade-infra snapshot", "needs a command"),
])
def test_wrong_commands_are_caught(cli, command, problem):
    q = doccheck.Quoted("planted.md", 1, command)
    problems = doccheck.check_argv(q.argv(), cli)
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize("command", [
    "upgrade-infra --json history production",
    "upgrade-infra --stack PATH --state-dir DIR --json COMMAND",
    "upgrade-infra rollback production [--to RESTORE_POINT]",
    "upgrade-infra stage gc [--dry-run]   # a comment",
    "upgrade-infra upgrade production --to assistant=1.2.0 --to automations=1.2.0 --watch 30",
    "upgrade-infra --json validate stage-1 --suite workflow | jq '.results[]'",
])
def test_right_commands_pass(cli, command):
    assert doccheck.check_argv(doccheck.Quoted("ok.md", 1, command).argv(), cli) == []


def test_a_planted_wrong_command_in_a_doc_fails_the_check(tmp_path):
    """The whole pipeline (extraction from a fenced block and from prose, then the check) on a copy of
    a real page with two wrong commands planted."""
    page = tmp_path / "docs" / "planted.md"
    page.parent.mkdir()
    shutil.copy(REPO / "docs" / "rollback" / "how-to.md", page)
    with open(page, "a") as f:
        f.write("\n```bash\nupgrade-infra history production --json\n```\n\nThen run `upgrade-infra env status`.\n")
    _, findings = doccheck.check(tmp_path, [page])
    assert [(f.command, f.line > 1) for f in findings] == [("upgrade-infra history production --json", True),
                                                           ("upgrade-infra env status", True)]


def test_manifest_fields_and_paths_quoted_in_prose_exist():
    findings = doccheck.check_names(REPO)
    assert not findings, "\n".join(str(f) for f in findings)


def test_a_planted_wrong_field_and_path_are_caught(tmp_path):
    page = tmp_path / "docs" / "planted.md"
    page.parent.mkdir()
    page.write_text("Set `policies.rollback_budget_s` and `policies.rollback_budget` (wrong); see\n"
                    "`docs/planted.md` and `docs/rollback/nowhere.md` (missing).\n")
    findings = doccheck.check_names(tmp_path, [page])
    assert [(f.command, f.problem) for f in findings] == [
        ("policies.rollback_budget", "no such manifest field"),
        ("docs/rollback/nowhere.md", "no such file or directory in the repository")]
