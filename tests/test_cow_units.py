"""Pure parts of the cow strategy: the O(files) integrity listing, strategy choice, filesystem type."""

from __future__ import annotations

from pathlib import Path

from upgrade_infra.core import fsutil
from upgrade_infra.restore import cow
from upgrade_infra.restore.points import get_strategy


def test_listing_detects_missing_and_resized_files(tmp_path: Path):
    (tmp_path / "base" / "1").mkdir(parents=True)
    (tmp_path / "base" / "1" / "16384").write_bytes(b"a" * 100)
    (tmp_path / "PG_VERSION").write_text("15\n")
    files = cow.listing(tmp_path)
    assert files == {"base/1/16384": 100, "PG_VERSION": 3}
    assert cow.listing_problems(tmp_path, files) == []
    (tmp_path / "base" / "1" / "16384").write_bytes(b"a" * 99)
    (tmp_path / "PG_VERSION").unlink()
    assert cow.listing_problems(tmp_path, files) == ["missing pgdata/PG_VERSION", "size mismatch: pgdata/base/1/16384"]


def test_a_named_strategy_is_kept_without_probing():
    assert cow.choose(None, "clone") == ("clone", "clone: named by --strategy or policies.snapshot_strategy")
    assert cow.choose(None, "cow")[0] == "cow"


def test_cow_is_registered_like_the_others():
    st = get_strategy("cow")
    assert st.name == "cow" and not st.needs_stopped_services and st.reference_kept and not st.portable


def test_fs_type_and_reflink_probe(tmp_path: Path):
    assert fsutil.fs_type(Path("/")) != "unknown"
    why = fsutil.reflink_problem(tmp_path)
    assert why is None or (fsutil.fs_type(tmp_path) in why and "cannot make reflink copies" in why)
    assert list(tmp_path.iterdir()) == []  # the probe cleans up after itself
