"""Sync strategies: argv builders, the registry, automatic choice, the two-phase Copy, CLI parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from upgrade_infra.backends.pgtools import restore_args
from upgrade_infra.cli.stage_cmds import parse_versions
from upgrade_infra.core.errors import BadInput, UnknownName
from upgrade_infra.staging import sync
from upgrade_infra.staging.sync.base import Copy
from upgrade_infra.staging.sync.dump import READ_ONLY, dump_args
from upgrade_infra.staging.sync.physical import unbind_auto_conf


def test_pg_dump_argv_is_parallel_uncompressed_directory_format():
    assert [str(a) for a in dump_args("host=/s port=5 user=postgres dbname=a", Path("/w/a"), 2)] == [
        "-Fd", "-j", "2", "-Z", "0", "--no-sync", "-f", "/w/a",
        "-d", "host=/s port=5 user=postgres dbname=a"]
    assert READ_ONLY == {"PGOPTIONS": "-c default_transaction_read_only=on"}  # every source session read-only


def test_pg_restore_argv():
    assert [str(a) for a in restore_args("dbname=a__uinfra_sync", Path("/w/a"), 4)] == [
        "-j", "4", "--exit-on-error", "-d", "dbname=a__uinfra_sync", "/w/a"]


def test_unbind_auto_conf_drops_listen_settings_only():
    text = "# Do not edit\nport = '25400'\n  unix_socket_directories = '/prod/run'\nwork_mem = '8MB'\n" \
           "listen_addresses='*'\n"
    assert unbind_auto_conf(text) == "# Do not edit\nwork_mem = '8MB'\n"


def test_registry_and_unknown_strategy():
    assert sync.names() == ["cow", "dump", "physical"]
    with pytest.raises(UnknownName) as e:
        sync.get("rsync")
    assert e.value.fix == "use one of: cow, dump, physical"


def test_choose_refuses_a_production_that_is_not_running(pa_stack):
    prod = pa_stack.env("production")  # never brought up
    with pytest.raises(BadInput) as e:
        sync.choose(prod)
    assert "is not running" in e.value.message and "--strategy physical" in e.value.fix
    with pytest.raises(BadInput, match="no PostgreSQL data dir"):
        sync.choose(prod, "physical")


def test_copy_commit_and_abort_run_their_actions_once():
    log: list[str] = []
    c = Copy("dump", {"a": "a__uinfra_sync"}, on_commit=[lambda: log.append("commit")],
             on_abort=[lambda: log.append("abort-1"), lambda: log.append("abort-2")])
    c.abort()
    c.commit()
    assert log == ["abort-2", "abort-1"]  # newest first, and nothing left to commit after an abort


def test_parse_versions():
    assert parse_versions(["assistant=1.1.0,automations=1.1.0"]) == {"assistant": "1.1.0", "automations": "1.1.0"}
    assert parse_versions(["assistant=1.2.0", "automations=1.0.0"]) == {"assistant": "1.2.0",
                                                                       "automations": "1.0.0"}
    with pytest.raises(BadInput, match="bad --versions value"):
        parse_versions(["assistant"])
