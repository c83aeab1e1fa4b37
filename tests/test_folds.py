"""One parser for ``name=value`` arguments, one free-port allocator, one private copy of a stack."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from ruamel.yaml import YAML

from upgrade_infra.core.errors import BadInput, PortInUse
from upgrade_infra.stack import ports
from upgrade_infra.stack.pairs import parse_versions, split_pair
from upgrade_infra.stack.private_copy import private_copy

from .conftest import PA_STACK, REPO


def test_one_parser_for_to_and_versions():
    for option in ("--to", "--versions"):
        assert parse_versions(["assistant=1.1.0,automations=1.1.0", " ledger = 2 "], option=option) == {
            "assistant": "1.1.0", "automations": "1.1.0", "ledger": "2"}
        for bad in ("assistant", "=1.1.0", "assistant="):
            with pytest.raises(BadInput, match=f"bad {option} value"):
                parse_versions([bad], option=option)
    with pytest.raises(BadInput, match="no target versions"):
        parse_versions([], required=True)
    for bad in ("../x=1", "a=b=c"):  # names become paths
        with pytest.raises(BadInput, match="is not a valid"):
            parse_versions([bad])


def test_split_pair_keeps_values_as_written_when_not_strict():
    assert split_pair("=5", message="m", fix="f", strict=False) == ("", "5")
    assert split_pair("label= x ", message="m", fix="f", strict=False) == ("label", " x ")
    with pytest.raises(BadInput, match="^m$"):
        split_pair("nope", message="m", fix="f", strict=False)


def test_port_window_from_the_variable_and_below_the_ephemeral_range(monkeypatch):
    monkeypatch.setenv(ports.PORT_WINDOW_ENV, "32000-32099")
    assert ports.port_window() == (32000, 32099)
    monkeypatch.delenv(ports.PORT_WINDOW_ENV)
    lo, hi = ports.port_window()
    assert lo == ports.DEFAULT_WINDOW_LO and hi < ports.ephemeral_low()
    for bad in ("x", "9-1", "1-70000"):
        with pytest.raises(BadInput, match="bad port window"):
            ports.port_window(bad)


def test_free_block_stays_in_the_window_and_skips_held_ports():
    lo, hi = ports.port_window()
    with socket.socket() as s:  # hold one port of a 2-port window: the other one is the only answer
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        held = ports.free_port()
        assert lo <= held <= hi
        s.bind(("127.0.0.1", held))
        s.listen()
        window = (held, held + 1) if ports.holder_of(held + 1) is None else (held - 1, held)
        other = window[1] if window[0] == held else window[0]
        assert {ports.free_port(window) for _ in range(20)} == {other}
        with pytest.raises(PortInUse, match="no free block of 2"):
            ports.free_block(2, window=window, tries=20)
    base = ports.free_block(30)
    assert lo <= base and base + 29 <= hi and base % 10 == lo % 10


def test_private_copy_moves_every_environment_to_free_ports(tmp_path):
    out = private_copy(tmp_path / "stack", PA_STACK / "stack.yaml", lambda d: d.__setitem__("name", "edited"))
    data = YAML(typ="safe").load(out.read_text())
    bases = [e["port_base"] for e in data["environments"].values()]
    lo, hi = ports.port_window()
    assert data["name"] == "edited" and len(set(bases)) == len(bases)
    assert all(lo <= b <= hi for b in [*bases, *data["staging"]["port_range"]])
    assert (tmp_path / "stack" / "pa_apps").is_symlink()


def test_benchmarks_and_tools_do_not_import_the_tests():
    r = subprocess.run(["grep", "-rnE", r"from tests|import tests", "benchmarks", "tools"], cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode == 1, r.stdout
    r = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, 'benchmarks'); import support; "
                        "import rollback, staging, env_up, leak_scan, migration, validation, scaling"],
                       cwd=REPO, capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr


def test_one_list_of_migration_bookkeeping_tables():
    """The rollback's quarantine report and the migration rehearsal know the same frameworks (the
    quarantine's own list missed Prisma, Liquibase, Entity Framework, Rails' metadata and the lock tables)."""
    from upgrade_infra.docsite.notebook import _is_bookkeeping as is_bookkeeping_row
    from upgrade_infra.migration import frameworks, integrity
    from upgrade_infra.restore import quarantine

    assert set(quarantine.BOOKKEEPING) == set(frameworks.FRAMEWORKS) == set(integrity.BOOKKEEPING)
    for table in ("_prisma_migrations", "databasechangelog", "__EFMigrationsHistory", "knex_migrations_lock"):
        assert table in quarantine.BOOKKEEPING and frameworks.framework_of(table)
        assert is_bookkeeping_row({"rows_new": 1, "table": table})


IMPORT_EACH = """
import importlib, pkgutil, sys
import upgrade_infra
names = sorted(m.name for m in pkgutil.walk_packages(upgrade_infra.__path__, "upgrade_infra.")
               if not m.name.endswith(".__main__"))  # runs the CLI
bad = []
for name in names:
    for loaded in [k for k in sys.modules if k.startswith("upgrade_infra")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as e:
        bad.append(f"{name}: {type(e).__name__}: {e}")
print(len(names))
print("\\n".join(bad))
"""


def test_every_module_imports_first():
    """Each module of the package imports in a fresh interpreter state, whatever is imported before it
    (``observe.maintenance`` did not: it imported ``restore.ops`` before ``restore.points``, a cycle)."""
    r = subprocess.run([sys.executable, "-c", IMPORT_EACH], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    count, *bad = r.stdout.strip().splitlines()
    assert int(count) > 80 and not [b for b in bad if b], bad
