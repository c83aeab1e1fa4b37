"""Masking: pure builders, the SQL HMAC against Python's, rule checks against a live schema, apply + leak check."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from ruamel.yaml import YAML

from upgrade_infra.core import sql
from upgrade_infra.core.errors import CheckFailed, ManifestError
from upgrade_infra.stack.manifest import load_manifest
from upgrade_infra.staging import masking
from upgrade_infra.staging import masking_sql as msql

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


@pytest.fixture
def leaky_db(pg_cluster):
    """A source and its copy: users (masked), and unmasked columns where production values can hide."""
    pg_cluster.create_database("leak_src")
    pg_cluster.create_database("leak_dst")
    ddl = ("CREATE TABLE users (id int PRIMARY KEY, full_name text NOT NULL, email text)",
           "CREATE TABLE agents (id int PRIMARY KEY, name varchar(40), system_prompt text)",
           "CREATE TABLE events (id int PRIMARY KEY, payload jsonb, raw json)",
           "CREATE TABLE messages (id int PRIMARY KEY, body text)",
           "CREATE VIEW v_agents AS SELECT * FROM agents")
    for db in ("leak_src", "leak_dst"):
        with sql.connect(pg_cluster.admin(db)) as c:
            for q in ddl:
                c.execute(q)
            c.execute("INSERT INTO users VALUES (1, 'Ada Lovelace', 'ada@corp.example'), (2, 'Björk', "
                      "'bjork@mail.example'), (3, 'Grace Hopper', 'grace@corp.example')")
            c.execute("INSERT INTO agents VALUES (1, 'Jarvis', 'You are concise.'), (2, 'Nova', 'Be kind.')")
            c.execute("""INSERT INTO events VALUES (1, '{"kind": "ping"}', '{"n": 1}')""")
            # kept free text: a common word that is also a one-word name is not flagged there
            c.execute("INSERT INTO messages VALUES (1, 'ada wrote: lovely weather'), (2, 'hello bjork fans')")
    return {"assistant": pg_cluster.admin("leak_src")}, {"assistant": pg_cluster.admin("leak_dst")}


def _leak_plan(tmp_path, dst):
    m = _manifest(tmp_path, {"users": {"full_name": "fake_name", "email": "fake_email"},
                             "messages": {"body": "keep"}})
    p = masking.plan(m, dst.__getitem__)
    masking.apply(p, dst.__getitem__, KEY, vacuum=False)
    return p


def test_leak_check_scans_unmasked_columns_and_names_them(tmp_path, leaky_db):
    """Issue 11 item 6: a production value planted in an unmasked column fails the check, naming
    table and column (the old check looked inside the masked columns only)."""
    src, dst = leaky_db
    p = _leak_plan(tmp_path, dst)
    clean = masking.leak_check(p, src.__getitem__, dst.__getitem__)
    assert clean["ok"], clean
    sql.execute(dst["assistant"], "UPDATE agents SET system_prompt = 'You help. The user is Björk.' WHERE id = 2")
    report = masking.leak_check(p, src.__getitem__, dst.__getitem__)
    assert not report["ok"]  # before the fix: ok, "no production value survives"
    # 3 full names, their parts of 5+ letters (lovelace, grace, hopper), 3 e-mails; not users (all masked), not the view
    assert clean["scan"]["tables"] == 3 and clean["scan"]["needles"] == 9
    assert [(h["table"], h["column"]) for h in report["scan"]["hits"]] == [("agents", "system_prompt")]
    assert report["scan"]["hits"][0]["example_from"] == "assistant.users.full_name"
    with pytest.raises(CheckFailed) as e:
        masking.require_no_leak(report)
    assert "assistant.agents.system_prompt" in e.value.message and "table agents, column system_prompt" \
        in e.value.message


def test_leak_check_finds_values_in_json_kept_text_and_secrets(tmp_path, leaky_db):
    src, dst = leaky_db
    p = _leak_plan(tmp_path, dst)
    sql.execute(dst["assistant"],
                """UPDATE events SET payload = '{"to": {"name": "GRACE HOPPER"}}', raw = '{"t": "tok-0123456789abcdef"}'""",
                "UPDATE messages SET body = 'mail ada@corp.example today' WHERE id = 1",
                "UPDATE agents SET name = 'Ada Lovelace' WHERE id = 1")
    report = masking.leak_check(p, src.__getitem__, dst.__getitem__,
                                secrets={"webhook_token": "tok-0123456789abcdef"})
    found = {(h["table"], h["column"]): h["example_from"] for h in report["scan"]["hits"]}
    assert found == {("events", "payload"): "assistant.users.full_name",  # case-insensitive, inside JSON
                     ("events", "raw"): "secret webhook_token",
                     ("messages", "body"): "assistant.users.email",  # kept text: distinctive values still count
                     ("agents", "name"): "assistant.users.full_name"}, found


_COPY = str.maketrans({"\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v", "\f": "\\f",
                       "\r": "\\r"})


def _rows(*rows):
    """Rows as COPY streams masking_sql.scan_cells (cells trimmed, escaped, framed by tabs), as the matcher reads them."""
    raw = b"".join(b"\t" + b"\t".join(c.strip(" ").translate(_COPY).encode() for c in r) + b"\t\n" for r in rows)
    return masking.scan_text(raw)


def test_matcher_words_whole_cells_and_kept_columns():
    values = ["olivia smith", "olivia", "mei", "björk", "ada@corp.example", "tok-0123456789abcdef"]
    m = masking.Matcher(values)
    found: dict[int, set[int]] = {}
    m.search(_rows(["the user is olivia.", "olivian skimmed mei's notes"],  # word; not inside a word
                   ["mei", "hello olivia smithson"],  # whole short cell; "olivia" is a word there
                   ["x", "«björk» and ada@corp.examples"],  # non-ASCII letters and punctuation
                   ["tok-0123456789abcdef", "Olivia Smith\n"]), [False, True], found)
    # column 0 (not kept): olivia (a word), mei (a whole cell), the token; column 1 (kept): only whole
    # cells (a trailing newline is no part of the value) and distinctive values count there
    assert found == {0: {1, 2, 5}, 1: {0}}, found
    found = {}
    m.search(_rows(["-", "mail ada@corp.example today, olivia smith"]), [False, True], found)
    assert found == {1: {0, 4}}  # distinctive values count in kept text
    found = {}
    m.search(_rows(["«björk» said", "  MEI  "]), [False, False], found)
    assert found == {0: {3}, 1: {2}}  # "mei" counts as a whole cell (the server lower-cases and trims cells)
    found = {}
    m.search(_rows(["x", "line one\nolivia"]), [False, False], found)  # a newline became a space, not "\\n"
    assert found == {1: {1}}


def test_matcher_finds_what_the_word_index_scan_found():
    """Cases where the PostgreSQL word-index scan (before the streamed one) found a value that plain
    word boundaries miss: a token glued to text, an e-mail before a non-ASCII letter, several words
    glued to others that are words elsewhere in the cell. Found by comparing both scans on 5,600
    random cells (none found by the old scan only)."""
    values = ["tok-0123456789abcdef", "ada@corp.example", "olivia smith", "o'brien", "bob@mail.example"]
    m = masking.Matcher(values)
    found: dict[int, set[int]] = {}
    m.search(_rows(["xTOK-0123456789ABCDEFx", "Ada@Corp.Exampleé", "OLIVIA SMITHxOLIVIA SMITH skimmed",
                    "o'briené theßo'brien"]), [False, True, False, False], found)
    assert found == {0: {0}, 1: {1}, 2: {2}, 3: {3}}, found
    found = {}
    m.search(_rows(["jimbob@mail.example", "olivia smithson", "olivian smith", "ada@corp.examples"]),
             [False] * 4, found)
    assert found == {}, found  # an e-mail inside another, a name inside longer words: no hit


def test_copy_out_streams_whole_rows(pg_cluster, leaky_db):
    _, dst = leaky_db
    sql.execute(dst["assistant"], "INSERT INTO messages SELECT g, 'row ' || g || E' with a\\ttab\\nand a newline \\\\' "
                "FROM generate_series(10, 2009) g")
    q = msql.scan_cells("messages", ["body"])
    batches = list(sql.copy_out(dst["assistant"], q, batch_bytes=4096))
    assert len(batches) > 5 and all(b.endswith(b"\t\n") for b in batches)
    rows = b"".join(batches).split(b"\n")[:-1]
    assert len(rows) == 2002 and b"\trow 10 with a\\ttab\\nand a newline \\\\\t" in rows  # COPY's escapes
    text = masking.scan_text(b"".join(batches))
    assert text.count(b"\n") == 2002 and b"\trow 10 with a  tab  and a newline   \t\n" in text
