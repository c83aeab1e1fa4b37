"""Fast checks without a database: release table, graph, names, sealing, SQL."""
import io

import pytest

from pa_apps.assistant.spec import SPEC as ASSISTANT
from pa_apps.automations.spec import SPEC as AUTOMATIONS
from pa_apps.common.db import sqlalchemy_url
from pa_apps.common.migrator import MigrationError, Migrator, Relation
from pa_apps.common.names import join_name, split_full_name
from pa_apps.common.releases import RELEASES, UnknownRelease, get_release, release_for_revision
from pa_apps.common.sealing import InvalidToken, Sealer, derive_key
from pa_apps.seed.people import people
from pa_apps.seed.sql import chunk_texts

SPECS = [ASSISTANT, AUTOMATIONS]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_every_release_head_exists_and_maps_back(spec):
    migrator = Migrator(spec.migrations)
    for version, release in RELEASES.items():
        head = release.head(spec.name)
        assert migrator.script.get_revision(head) is not None
        assert release_for_revision(spec.name, head) == version
    assert set(migrator.script.get_heads()) == {"r120", "r110_lossy", "r110_locking"}


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_revision_graph_relations(spec):
    m = Migrator(spec.migrations)
    assert m.relation(None, "r100") is Relation.BEHIND
    assert m.relation("r100", "r120") is Relation.BEHIND
    assert m.relation("r120", "r110") is Relation.AHEAD
    assert m.relation("r110", "r100") is Relation.AHEAD
    assert m.relation("r110", "r110") is Relation.EQUAL
    assert m.relation("r110_lossy", "r110") is Relation.DIVERGED
    assert m.relation("r110_locking", "r120") is Relation.DIVERGED


def test_release_lookup_and_flags():
    assert get_release("1.0.0").features.split_names is False
    assert get_release("1.1.0-locking").features == get_release("1.1.0").features
    assert get_release("1.2.0").features.recall_column != "content"  # the deliberate bug
    with pytest.raises(UnknownRelease):
        get_release("9.9.9")


def test_offline_sql_both_directions_and_branches():
    m = Migrator(ASSISTANT.migrations)
    up, down = io.StringIO(), io.StringIO()
    m.offline_sql("r100", "r110", up)
    m.offline_sql("r110", "r100", down)
    assert "ALTER TABLE users ADD COLUMN first_name TEXT" in up.getvalue()
    assert "ALTER TABLE users DROP COLUMN full_name" in up.getvalue()
    assert "ALTER TABLE users ADD COLUMN full_name TEXT" in down.getvalue()
    with pytest.raises(MigrationError):
        m.offline_sql("r110", "r110_lossy", io.StringIO())
    locking = io.StringIO()
    m.offline_sql("r100", "r110_locking", locking)
    assert "md5(random()::text)" in locking.getvalue() and "pg_sleep" in locking.getvalue()


@pytest.mark.parametrize("full, parts", [
    ("Mary Ann Smith", ("Mary", "Ann Smith")),
    ("  Oliver   del Río ", ("Oliver", "del Río")),
    ("Björk", ("Björk", "")),
    ("", ("", "")),
    ("Jean\tValjean", ("Jean", "Valjean")),
])
def test_split_full_name(full, parts):
    assert split_full_name(full) == parts
    assert join_name(*parts) == " ".join(full.split())


def test_sealing_round_trip_and_wrong_key():
    sealer = Sealer("production key")
    token = sealer.seal_json({"api_key": "sk-123"})
    assert sealer.open_json(token) == {"api_key": "sk-123"}
    assert token != sealer.seal_json({"api_key": "sk-123"})  # random IV
    with pytest.raises(InvalidToken, match="wrong PA_SECRET_KEY"):
        Sealer("staging key").open_json(token)
    with pytest.raises(InvalidToken):
        sealer.decrypt(token[:-4] + "AAAA")
    assert len(derive_key("any string")) == 44


def test_url_conversion():
    assert sqlalchemy_url("postgresql://u:p@h:1/db") == "postgresql+psycopg://u:p@h:1/db"
    assert sqlalchemy_url("postgresql+psycopg://h/db") == "postgresql+psycopg://h/db"


def test_seed_material_is_deterministic_and_realistic():
    assert chunk_texts(count=3) == chunk_texts(count=3)
    persons = people(300)
    assert len({p.email for p in persons}) == 300
    assert any(len(p.full_name.split()) == 1 for p in persons)
    assert any(len(p.full_name.split()) > 2 for p in persons)
