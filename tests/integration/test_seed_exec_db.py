"""Seed as a service's one-off job (before the services start), ``exec`` and ``db`` on the reference stack."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from upgrade_infra.operations.session import Session

from ..conftest import stop_all, write_stack

PROBE = '''
import json, os, socket, sys
port, out = int(sys.argv[1]), sys.argv[2]
s = socket.socket()
listening = s.connect_ex(("127.0.0.1", port)) == 0
s.close()
json.dump({"listening": listening, "cwd": os.getcwd(), "version": sys.argv[3], "size_mb": sys.argv[4],
           "has_database_url": "DATABASE_URL" in os.environ, "has_secret_key": bool(os.environ.get("PA_SECRET_KEY")),
           "extra": os.environ.get("SEED_EXTRA")}, open(out, "w"))
print(json.dumps({"rows": 0}))
'''


@pytest.fixture(scope="module")
def seeded_by_job(tmp_path_factory):
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="uinfra-seedjob-"))
    os.chmod(root, 0o711)

    def edit(data):
        data["seed"] = {"service": "automations", "size_mb": 1, "env": {"SEED_EXTRA": "from-seed-env"},
                        "command": "{python} {stack_dir}/seed_probe.py {port} {state_dir}/probe.json {version} {size_mb}"}

    stack = write_stack(root / "stack", edit=edit)
    (stack.parent / "seed_probe.py").write_text(PROBE)
    s = Session(stack, root / "state")
    try:
        up = s.env("production").up()
        yield s, up
    finally:
        stop_all(s)
        shutil.rmtree(root, ignore_errors=True)


def cli(s: Session, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "upgrade_infra", "--stack", str(s.stack), "--state-dir",
                           str(s.state.root), *args], capture_output=True, text=True, timeout=120)


def test_seed_runs_as_the_service_job_before_the_services_start(seeded_by_job):
    s, up = seeded_by_job
    probe = json.loads((s.state.root / "probe.json").read_text())
    env = s.env("production")
    assert up["seed"]["service"] == "automations" and up["seed"]["before_start"] is True
    assert probe["listening"] is False  # automations was not up yet
    assert probe["has_database_url"] and probe["has_secret_key"]  # the service's env, not repeated in seed.env
    assert probe["extra"] == "from-seed-env"
    assert probe["version"] == env.record.versions["automations"] and probe["size_mb"] == "1"
    assert probe["cwd"] == str(s.state.installs_dir("automations", probe["version"]))  # its installed release
    assert env.record.seeded and env.status().healthy


def test_exec_runs_a_command_with_the_service_settings(seeded_by_job):
    s, _ = seeded_by_job
    code = ("import os; print(os.environ['UPGRADE_INFRA_VERSION'], 'DATABASE_URL' in os.environ, "
            "bool(os.environ.get('PA_SECRET_KEY')), os.getcwd())")
    r = cli(s, "exec", "production", "automations", "--", sys.executable, "-c", code)
    assert r.returncode == 0, r.stderr
    ver = s.env("production").record.versions["automations"]
    assert r.stdout.split() == [ver, "True", "True", str(s.state.installs_dir("automations", ver))]
    assert cli(s, "exec", "production", "automations", "--", "sh", "-c", "exit 7").returncode == 7
    assert cli(s, "exec", "production", "nosuch", "--", "true").returncode == 2


def test_db_prints_a_secret_free_url_and_opens_psql(seeded_by_job):
    s, _ = seeded_by_job
    env = s.env("production")
    password = env.db_info()["assistant"]["password"]
    r = cli(s, "--json", "db", "production", "assistant")
    assert r.returncode == 0, r.stderr
    c = json.loads(r.stdout)
    assert c["url"] == f"postgresql://assistant@127.0.0.1:{env.ports['postgres']}/assistant"
    assert password not in r.stdout + r.stderr
    assert stat.S_IMODE(os.stat(c["passfile"]).st_mode) == 0o600
    shell = cli(s, "db", "production", "assistant", "--env")
    assert "PGPASSFILE=" in shell.stdout and password not in shell.stdout
    q = cli(s, "db", "production", "assistant", "--psql", "--", "-tAc", "select current_user, current_database()")
    assert q.returncode == 0, q.stderr
    assert q.stdout.strip() == "assistant|assistant"
    assert cli(s, "db", "production", "nosuch").returncode == 2
