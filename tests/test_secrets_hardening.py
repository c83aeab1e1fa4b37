"""Secrets stay out of argv, the journal and history; the manifest check warns about ephemeral ports.

Issue 11, items 4 and 11 (the parts that need no running stack; the integration part is
tests/integration/test_private_files.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from upgrade_infra.cli import main
from upgrade_infra.core import redact
from upgrade_infra.core.errors import ManifestError
from upgrade_infra.core.journal import Journal, history
from upgrade_infra.core.state import StateDir
from upgrade_infra.stack import secrets as secretlib
from upgrade_infra.stack import templates
from upgrade_infra.stack.manifest import load_manifest

from .conftest import PA_STACK

BASE = """\
name: demo
postgres:
  databases:
    app: {owner: web}
secrets:
  api_token: {env: DEMO_API_TOKEN, generate: true}
services:
  web:
    port: 1
    command: "COMMAND"
    env: {DATABASE_URL: "{db.app.url}", API_TOKEN: "{secrets.api_token}"}
    versions: {"1.0": {}}
    health: {http: /}
environments:
  production:
    port_base: PORT
    versions: {web: "1.0"}
staging:
  port_range: [27100, 27199]
"""


def _manifest(tmp_path: Path, command: str = "{python} -m http.server {port}", port: int = 27000,
              extra: str = "") -> Path:
    p = tmp_path / "stack.yaml"
    p.write_text(BASE.replace("COMMAND", command).replace("PORT", str(port)) + extra)
    return p


# -- item 4: templates that put a secret into argv are an error at manifest load ------------------------
@pytest.mark.parametrize("command, placeholder", [
    ("{python} app.py --db {db.app.url}", "db.app.url"),
    ("{python} app.py --password {db.app.password}", "db.app.password"),
    ("{python} app.py --token={secrets.api_token}", "secrets.api_token"),
])
def test_secret_in_service_argv_is_a_manifest_error(tmp_path, command, placeholder):
    path = _manifest(tmp_path, command)
    with pytest.raises(ManifestError) as e:
        load_manifest(path)
    issue = e.value.issues[0]
    assert issue.field == "services.web.command" and issue.line == 10
    assert placeholder in issue.problem and "ps" in issue.problem
    assert "pass it by environment" in issue.fix and "services.web.env" in issue.fix
    # the CLI: exit 2, one line naming file:line: field and the fix, nothing created
    state = tmp_path / "state"
    assert main(["--stack", str(path), "--state-dir", str(state), "env", "up", "production"]) == 2
    assert not state.exists()


def test_secret_in_seed_argv_names_seed_env(tmp_path):
    path = _manifest(tmp_path, extra='seed:\n  command: "{python} seed.py {db.app.url}"\n')
    with pytest.raises(ManifestError) as e:
        load_manifest(path)
    (issue,) = e.value.issues
    assert issue.field == "seed.command" and issue.line == 21 and "seed.env" in issue.fix


def test_secret_by_environment_is_fine(tmp_path):
    m = load_manifest(_manifest(tmp_path, extra='seed:\n  command: "{python} seed.py"\n'
                                             '  env: {DB: "{db.app.url}"}\n'))
    assert m.seed and m.seed.env["DB"] == "{db.app.url}"


def _is_secret(field: str) -> bool:
    return field.startswith("secrets.") or (field.startswith("db.") and field.endswith((".url", ".password")))


def test_reference_seed_passes_database_urls_by_environment(private_tmp):
    m = load_manifest(PA_STACK / "stack.yaml")
    assert not [f for f in templates.placeholders(m.seed.command) if _is_secret(f)]
    assert {m.seed.env["PA_ASSISTANT_DB"], m.seed.env["PA_AUTOMATIONS_DB"]} == {"{db.assistant.url}",
                                                                                "{db.automations.url}"}
    # the argv the tool would run carries no password; the environment does
    from upgrade_infra.backends.seed import seed_argv
    from upgrade_infra.operations.session import Session

    from .conftest import write_stack

    s = Session(write_stack(private_tmp / "stack"), private_tmp / "state")
    argv, env, _ = seed_argv(s.env("production"), 1)
    passwords = [secretlib.db_password(s.state, "production", db) for db in ("assistant", "automations")]
    assert not [a for a in argv if any(p in a for p in passwords)]
    assert passwords[0] in env["PA_ASSISTANT_DB"] and passwords[1] in env["PA_AUTOMATIONS_DB"]
    # and the seeder takes them from there
    out = subprocess.run([sys.executable, "-m", "pa_apps.seed", "--help"], cwd=PA_STACK, capture_output=True,
                         text=True, check=True).stdout
    assert "$PA_ASSISTANT_DB" in out


# -- item 4: known secret values never reach the journal or history -----------------------------------
def test_journal_and_history_scrub_known_secrets(tmp_path, monkeypatch):
    state = StateDir(tmp_path / "state").ensure()
    password = secretlib.db_password(state, "production", "app")  # generated, kept in the state dir
    token = "tok-" + os.urandom(8).hex()
    redact.register(token)  # e.g. a declared secret resolved by this process
    j = Journal(state, "production")
    j.start("op-1", "upgrade", command="upgrade-infra upgrade production")
    j.append("step-end", "op-1", step="start_services", status="failed",
             error=f"web not ready. Last log lines: config error: token={token} | db password {password}")
    j.append("op-end", "op-1", outcome="rolled-back", error=f"failed: {token}")
    raw = j.path.read_text()
    assert token not in raw
    assert password not in raw
    assert sum(json.dumps(r, ensure_ascii=False).count(redact.MASK) for r in j.records()) == 3
    # history also scrubs records written before (e.g. by an older version) with the state's values
    with open(j.path, "a") as f:
        f.write(json.dumps({"type": "note", "op": "op-1", "env": "production", "at": 1.0,
                            "data": {"leak": f"pw {password}"}}) + "\n")
    (op,) = history(state)
    assert password not in json.dumps(op.to_dict()) and op.data["leak"] == f"pw {redact.MASK}"


# -- item 11: the manifest check warns about the kernel's ephemeral port range ------------------------
def test_rendered_secret_named_variables_are_registered():
    token, flag = "tok-" + os.urandom(8).hex(), "not-a-secret-" + os.urandom(4).hex()
    env = templates.render_env({"WEBHOOK_TOKEN": "{t}", "DB_PASSWORD": "{t}x", "MAIL_MODE": "{f}"},
                               {"t": token, "f": flag})
    assert env["WEBHOOK_TOKEN"] == token
    assert {token, token + "x"} <= redact.known() and flag not in redact.known()
    assert redact.scrub(f"{token} {flag}") == f"{redact.MASK} {flag}"


def test_port_blocks_in_ephemeral_range_warn_not_fail(tmp_path, capsys):
    path = _manifest(tmp_path, port=40000)
    m = load_manifest(path)  # loads: a warning, not an error
    lo, hi = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    if lo <= 40000 <= hi:  # the real kernel range (32768-60999 by default): the warning is on the manifest
        (w,) = getattr(m, "warnings", [])
        assert w.field == "environments.production.port_base" and w.line == 16
        assert main(["--stack", str(path), "--state-dir", str(tmp_path / "s"), "--json", "status"]) == 0
        assert "warning:" in capsys.readouterr().err
    from upgrade_infra.stack.crosschecks import warning_issues

    issues = warning_issues(m, ephemeral=(32768, 60999))
    assert [loc for loc, _, _ in issues] == [("environments", "production", "port_base")]
    assert "ephemeral" in issues[0][1] and "sysctl" in issues[0][2]
    assert [loc for loc, _, _ in warning_issues(m, ephemeral=(27150, 27160))] == [("staging", "port_range")]
    assert warning_issues(m, ephemeral=(50000, 60000)) == []


def test_ephemeral_range_parsing(tmp_path):
    from upgrade_infra.stack.crosschecks import ephemeral_range

    f = tmp_path / "range"
    f.write_text("32768\t60999\n")
    assert ephemeral_range(f) == (32768, 60999)
    assert ephemeral_range(tmp_path / "missing") is None


# -- item 10: the base outside the state dir is found, owned and cleaned up ---------------------------
@pytest.fixture
def open_tmp():
    import shutil
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="uinfra-base-"))
    os.chmod(d, 0o755)  # like /var/lib: every user may traverse
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_state_base_belongs_to_its_state_dir(open_tmp, monkeypatch):
    from upgrade_infra.core.errors import StateDirError
    from upgrade_infra.core.state import orphan_bases, prune_orphan_bases, traversal_blocker

    tmp_path = open_tmp
    monkeypatch.setenv("UPGRADE_INFRA_PG_BASE", str(tmp_path / "bases"))
    private = tmp_path / "home"
    private.mkdir(mode=0o700)
    state = StateDir(private / "state").ensure()
    if os.geteuid() == 0:
        assert traversal_blocker(state.root, "postgres") == private
        home = state.pg_home("production", "postgres")
        assert home == state.pg_base() / "envs" / "production" / "pg" and (state.env_dir("production") / "pg").is_symlink()
        assert state.owns(home) and not state.owns(tmp_path / "elsewhere")
        with pytest.raises(StateDirError, match="not a path inside"):
            state.server_dir("../../x", "postgres")
        (state.env_dir("other")).mkdir(parents=True)
        (state.env_dir("other") / "pg").symlink_to(tmp_path)  # planted: points outside the base
        with pytest.raises(StateDirError, match="outside this state dir"):
            state.pg_home("other", "postgres")
        assert orphan_bases() == []  # its state dir exists
        import shutil

        shutil.rmtree(private)
        assert orphan_bases() == [state.pg_base()] and prune_orphan_bases() == [state.pg_base()]
        assert not state.pg_base().exists()
    assert StateDir(tmp_path / "s2").ensure().pg_home("production", None) == tmp_path / "s2" / "envs" / "production" / "pg"
