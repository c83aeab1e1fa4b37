"""Pure builders: argv lists, SQL, templates, ports, redaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from upgrade_infra.backends.local import postgres
from upgrade_infra.core import fsutil, redact, runner, sql
from upgrade_infra.core.errors import BadInput
from upgrade_infra.stack import templates
from upgrade_infra.stack.manifest import load_manifest
from upgrade_infra.stack.ports import allocate_block, env_ports

from .conftest import PA_STACK

PG = postgres.PgInstall(Path("/pg/bin"), 15, "15.4", "system")


def test_as_user():
    assert runner.as_user(["initdb"], None) == ["initdb"]
    assert runner.as_user(["initdb", "-D", "x"], "postgres") == ["runuser", "-u", "postgres", "--", "initdb", "-D", "x"]


def test_initdb_and_pg_ctl_argv():
    assert postgres.initdb_argv(PG, Path("/d")) == [
        "/pg/bin/initdb", "-D", "/d", "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256",
        "-E", "UTF8", "--locale=C.UTF-8", "--no-instructions"]
    assert postgres.pg_ctl_argv(PG, "start", Path("/d"), Path("/l")) == [
        "/pg/bin/pg_ctl", "start", "-D", "/d", "-w", "-t", "60", "-l", "/l"]
    assert postgres.pg_ctl_argv(PG, "stop", Path("/d"), mode="immediate")[-2:] == ["-m", "immediate"]


def test_conf_text_quotes_strings():
    text = postgres.conf_text(5432, Path("/s"), {"shared_buffers": "128MB", "max_connections": 50})
    assert "port = 5432" in text and "shared_buffers = '128MB'" in text and "max_connections = 50" in text


def test_socket_dir_falls_back_when_path_too_long():
    short = postgres.socket_dir_for(Path("/s/envs/prod"))
    assert short == Path("/s/envs/prod/pg/run")
    long = postgres.socket_dir_for(Path("/x" * 60))
    assert str(long).startswith("/tmp/uinfra-") and len(str(long)) < 40


def test_cp_argv():
    assert fsutil.cp_argv(Path("/a"), Path("/b")) == ["cp", "-a", "--reflink=auto", "/a", "/b"]


def test_sql_builders():
    assert sql.create_database("a b", owner="o", template="t", strategy="file_copy").as_string() == \
        'CREATE DATABASE "a b" TEMPLATE "t" OWNER "o" STRATEGY FILE_COPY'
    assert sql.rename_database("x", "y").as_string() == 'ALTER DATABASE "x" RENAME TO "y"'
    assert sql.create_role("r", "p'w").as_string() == "CREATE ROLE \"r\" LOGIN PASSWORD 'p''w'"


def test_build_argv_keeps_values_with_spaces_whole():
    argv = templates.build_argv("{python} -m app --dir {data_dir}", {"python": "/py", "data_dir": "/a b"})
    assert argv == ["/py", "-m", "app", "--dir", "/a b"]


def test_dotted_placeholders():
    ctx = {"db": {"app": {"url": "postgresql://x"}}}
    assert templates.render("{db.app.url}", ctx) == "postgresql://x"
    assert templates.check_placeholder("db.app.url", {"db"}, {"db": {"app"}}) is None
    assert "no declared" in templates.check_placeholder("db.other.url", {"db"}, {"db": {"app"}})
    assert "X one of" in templates.check_placeholder("db.app.uri", {"db"}, {"db": {"app"}})
    with pytest.raises(BadInput):
        templates.build_argv("a 'b", {})


def test_ports_and_staging_blocks():
    m = load_manifest(PA_STACK / "stack.yaml")
    assert env_ports(m, 25400) == {"postgres": 25400, "assistant": 25401, "automations": 25402}
    assert allocate_block(m, []) == 26000
    assert allocate_block(m, [26000]) == 26003
    assert allocate_block(m, [26001]) == 26004


def test_redaction():
    redact.register("s3cr3t-value")
    text = "key=s3cr3t-value url=postgresql://app:pw123456@127.0.0.1/db password=abcdefgh"
    out = redact.scrub(text)
    assert "s3cr3t-value" not in out and "pw123456" not in out and "abcdefgh" not in out
    assert out.count(redact.MASK) == 3
