"""The one registry type: names, typed errors, and entry points read from real distribution metadata
(a dist-info written into a directory on sys.path), for a registry of a test-only group."""

from __future__ import annotations

import pytest

from upgrade_infra.core.errors import BadInput, UnknownName
from upgrade_infra.core.registry import GROUPS, Registry
from upgrade_infra.core.steps import RECOVERY
from upgrade_infra.restore.registry import STRATEGIES
from upgrade_infra.stack.checkkinds import KINDS
from upgrade_infra.staging import sync

GROUP = "upgrade_infra_test.things"


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A package ``uinfra_things`` and its dist-info declaring four entry points in GROUP."""
    pkg = tmp_path / "uinfra_things"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "decorated.py").write_text(
        "from tests.test_registry import REG\n\n@REG.register('decorated')\nclass Decorated:\n    pass\n")
    (pkg / "plain.py").write_text("class Plain:\n    pass\n")
    (pkg / "nothing.py").write_text("X = 1\n")
    info = tmp_path / "uinfra_things-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: uinfra-things\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{GROUP}]\ndecorated = uinfra_things.decorated\nplain = uinfra_things.plain:Plain\n"
        "nothing = uinfra_things.nothing\nbroken = uinfra_things.missing_module\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path


#: the registry the plugin's decorated module registers into (read once, by the test below)
REG: Registry = Registry("thing", GROUP, adapt=lambda name, cls: (name, cls.__name__))


def test_entry_points_register_modules_and_objects(plugin_dir):
    assert REG.names() == ["decorated", "plain"]  # module entry point (its decorator ran) and an object
    assert REG.get("plain") == ("plain", "Plain") and REG["decorated"] == ("decorated", "Decorated")
    assert "plain" in REG and len(REG) == 2 and REG.get("nope", None) is None

    with pytest.raises(UnknownName) as e:
        REG.get("nope")
    assert e.value.exit_code == 2 and e.value.message == "unknown thing 'nope'"
    assert e.value.fix == "use one of: decorated, plain"
    assert e.value.details["known"] == ["decorated", "plain"] and e.value.details["group"] == GROUP

    with pytest.raises(BadInput, match=r"the thing 'broken' could not be loaded: .*ModuleNotFoundError"):
        REG.get("broken")  # a broken plugin fails when it is asked for, not before
    with pytest.raises(BadInput, match="was imported but registered no thing 'nothing'"):
        REG.get("nothing")


def test_an_empty_registry_says_to_reinstall():
    with pytest.raises(UnknownName) as e:
        Registry("widget", "upgrade_infra_test.none").get("x")
    assert "reinstall upgrade-infra" in e.value.fix


def test_the_built_ins_come_through_our_own_entry_points():
    assert {"http", "sql", "command", "workflow", "performance", "browser", "pytest"} <= set(KINDS.names())
    assert STRATEGIES.names() == ["clone", "cow", "dump", "fs", "pg-volume"]
    assert sync.names() == ["cow", "dump", "physical"]
    assert {"upgrade", "rollback", "snapshot", "migrate-test", "pg-major"} <= set(RECOVERY.names())
    assert set(GROUPS.values()) == {r.group for r in (KINDS, STRATEGIES, sync.STRATEGIES, RECOVERY)} | {
        "upgrade_infra.backends"}
    with pytest.raises(UnknownName, match="unknown restore-point strategy 'zfs'") as e:
        STRATEGIES.get("zfs")
    assert e.value.fix == "use one of: auto, clone, cow, dump, fs, pg-volume (policies.snapshot_strategy or --strategy)"
