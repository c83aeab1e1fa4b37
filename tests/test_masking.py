"""Masking: pure builders, the SQL HMAC against Python's, rule checks against a live schema, apply + leak check."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from ruamel.yaml import YAML

from upgrade_infra import masking, sql
from upgrade_infra import masking_sql as msql
from upgrade_infra.errors import ManifestError
from upgrade_infra.manifest import load_manifest

from .conftest import PA_STACK

KEY = b"test-key-0123456789"


def test_hmac_pads_match_rfc2104():
    ipad, opad = msql.hmac_pads(KEY)
    inner = hashlib.sha256(ipad + b"email:x").digest()
    assert hashlib.sha256(opad + inner).digest() == hmac.new(KEY, b"email:x", hashlib.sha256).digest()


def test_update_builder_one_pass_per_table():
    q = msql.update_table("users", {"email": ("fake_email", None), "note": ("null", None),
                                    "tier": ("constant", "basic")})
    assert q.as_string() == ('UPDATE "public"."users" SET "email" = pg_temp."uinfra_fake_email"("email"::text), '
                             "\"note\" = NULL, \"tier\" = 'basic'")
    assert msql.update_table("crm.people", {"n": ("hash", None)}).as_string().startswith('UPDATE "crm"."people"')
    assert msql.vacuum_full("users").as_string() == 'VACUUM (FULL, ANALYZE) "public"."users"'


def test_helper_functions_live_in_pg_temp_and_embed_only_hex():
    stmts = [s.as_string() for s in msql.helper_functions(KEY)]
    assert all(s.startswith("CREATE FUNCTION pg_temp.uinfra_") for s in stmts)
    assert KEY.decode() not in "".join(stmts)  # the key appears only as pads, in hex


@pytest.fixture(scope="module")
def masked_db(pg_cluster):
    pg_cluster.create_database("mask_src")
    pg_cluster.create_database("mask_dst")
    ddl = ("CREATE TABLE users (id int PRIMARY KEY, full_name text NOT NULL, email text UNIQUE, note text, "
           "age int, tier text)", "CREATE TABLE orders (id int, email text)")
    rows = [(1, "Ada Lovelace", "ada@corp.example", "vip", 36, "gold"),
            (2, "  Grace  Brewster Hopper ", "Grace@corp.example", None, 85, "silver"),
            (3, "Björk", "bjork@mail.example", "x", 50, "gold"), (4, "", "", "y", 1, "gold")]
    for db in ("mask_src", "mask_dst"):
        with sql.connect(pg_cluster.admin(db)) as c:
            for q in ddl:
                c.execute(q)
            for r in rows:
                c.execute("INSERT INTO users VALUES (%s, %s, %s, %s, %s, %s)", r)
                c.execute("INSERT INTO orders VALUES (%s, %s)", (r[0], r[2].lower()))
    return {"assistant": pg_cluster.admin("mask_src")}, {"assistant": pg_cluster.admin("mask_dst")}


def _manifest(tmp, rules):
    """The reference manifest with other masking rules (nothing runs, so its ports do not matter)."""
    yaml = YAML()
    data = yaml.load((PA_STACK / "stack.yaml").read_text())
    data["staging"]["masking"] = {"assistant": rules}
    tmp.mkdir(parents=True, exist_ok=True)
    with open(tmp / "stack.yaml", "w") as f:
        yaml.dump(data, f)
    return load_manifest(tmp / "stack.yaml")


def test_sql_hmac_equals_python_hmac(pg_cluster, masked_db):
    conn = masked_db[0]["assistant"]
    with sql.connect(conn) as c:
        for q in msql.helper_functions(KEY):
            c.execute(q)
        got = c.execute("SELECT encode(pg_temp.uinfra_mac('hash', 'Ada'), 'hex') AS h").fetchone()["h"]
        names = c.execute("SELECT pg_temp.uinfra_fake_name('  Grace  Brewster Hopper ') AS n, "
                          "pg_temp.uinfra_fake_first_name('Grace') AS f, "
                          "pg_temp.uinfra_fake_last_name('Brewster Hopper') AS l, "
                          "pg_temp.uinfra_fake_email(' Grace@Corp.example') AS e1, "
                          "pg_temp.uinfra_fake_email('grace@corp.example') AS e2, "
                          "pg_temp.uinfra_fake_name('Björk') AS mono").fetchone()
    assert got == hmac.new(KEY, b"hash:Ada", hashlib.sha256).hexdigest()
    # the masked full name splits (as release 1.1.0 does) into the masked first and last names
    assert names["n"] == f"{names['f']} {names['l']}"
    assert names["e1"] == names["e2"] and names["e1"].endswith("@example.invalid")
    assert " " not in names["mono"] and names["mono"] != "Björk"


def test_plan_reports_missing_column_with_manifest_line(tmp_path, masked_db):
    m = _manifest(tmp_path, {"users": {"first_name": "fake_first_name", "email": "fake_email"}})
    with pytest.raises(ManifestError) as e:
        masking.plan(m, masked_db[0].__getitem__, context="production runs assistant 1.0.0")
    msg = e.value.one_line()
    assert "staging.masking.assistant.users.first_name" in msg and "users.first_name does not exist" in msg
    assert "stack.yaml:" in msg and "if_exists" in msg and "full_name" in msg


def test_plan_if_exists_skips_and_type_checks(tmp_path, masked_db):
    m = _manifest(tmp_path, {"users": {"first_name": {"rule": "fake_first_name", "if_exists": True},
                                       "full_name": "fake_name", "id": "keep"}})
    p = masking.plan(m, masked_db[0].__getitem__)
    assert [r.where for r in p.skipped] == ["assistant.users.first_name"]
    assert [r.where for r in p.apply] == ["assistant.users.full_name"]
    bad = _manifest(tmp_path / "b", {"users": {"age": "hash", "full_name": "null"}})
    with pytest.raises(ManifestError) as e:
        masking.plan(bad, masked_db[0].__getitem__)
    assert len(e.value.issues) == 2 and "needs a text column" in e.value.one_line()


def test_apply_masks_deterministically_and_leak_check_passes(tmp_path, masked_db):
    src, dst = masked_db
    m = _manifest(tmp_path, {"users": {"full_name": "fake_name", "email": "fake_email", "note": "null",
                                       "tier": {"constant": "basic"}}, "orders": {"email": "fake_email"}})
    p = masking.plan(m, dst.__getitem__)
    before = masking.leak_check(p, src.__getitem__, dst.__getitem__)
    assert not before["ok"]  # an unmasked copy leaks, and the check says so
    report = masking.apply(p, dst.__getitem__, KEY)
    assert {t["table"]: t["rows"] for t in report["tables"]} == {"users": 4, "orders": 4}
    after = masking.leak_check(p, src.__getitem__, dst.__getitem__)
    assert after["ok"], after
    masking.require_no_leak(after)
    rows = sql.fetch(dst["assistant"], "SELECT u.id, u.full_name, u.email, u.note, u.tier, o.email AS o_email "
                     "FROM users u JOIN orders o ON o.email = lower(u.email) ORDER BY u.id")
    assert [r["id"] for r in rows] == [1, 2, 3, 4]  # joins on the masked email still match
    assert rows[3]["full_name"] == "" and rows[3]["email"] == ""  # empty stays empty
    assert {r["tier"] for r in rows} == {"basic"} and {r["note"] for r in rows} == {None}
