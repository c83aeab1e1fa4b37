"""``import compose``: a stack.yaml from real-world Compose files (n8n, Open WebUI, Letta, Flowise and a
generic homelab file). What was found, what was not inferred (with the Compose line and the key to edit),
that no secret value reaches the output, that the manifest part loads with the real loader, and the CLI's
exit codes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from upgrade_infra.cli import main
from upgrade_infra.core.errors import BadInput
from upgrade_infra.stack.compose_import import (
    COMPOSE_KEY,
    SECRET_NAME,
    Image,
    Interpolator,
    import_compose,
    pg_major,
    read_dotenv,
)
from upgrade_infra.stack.manifest import load_manifest

DATA = Path(__file__).parent / "data" / "compose"
FILES = {"n8n": DATA / "n8n" / "docker-compose.yml", "openwebui": DATA / "openwebui" / "docker-compose.yml",
         "letta": DATA / "letta" / "compose.yaml", "flowise": DATA / "flowise" / "docker-compose.yml",
         "generic": DATA / "generic" / "docker-compose.yml"}
PLANTED_ENV = "Planted-Process-Env-Secret-3141"


def run(name: str, **kw):
    return import_compose(FILES[name], environ=kw.pop("environ", {}), **kw)


def items(result, service=None) -> list[tuple[int | None, str | None, str]]:
    return [(n.line, n.key, n.problem) for n in result.not_inferred if service is None or n.service == service]


def planted(name: str) -> set[str]:
    """Every secret value planted in the fixture (they say so): in .env, and written in the Compose file."""
    env = read_dotenv(FILES[name].parent / ".env")
    out = {v for k, v in env.items() if re.match(r"(?i)planted|sk-planted", v)}
    assert all(SECRET_NAME.search(k) for k, v in env.items() if v in out)
    text = FILES[name].read_text()
    out |= set(re.findall(r"(?:Planted|literal)-[A-Za-z0-9-]+", text))
    return out


def compose_line(name: str, needle: str) -> int:
    return next(i for i, line in enumerate(FILES[name].read_text().splitlines(), 1) if needle in line)


# -- per file ------------------------------------------------------------------------------------------
def test_n8n():
    r = run("n8n")
    assert r.postgres.items() >= {"service": "postgres", "major": 16, "volume": "db_storage", "user": "changeUser",
                                  "password_secret": "postgres_password"}.items()
    assert {n: d["owner"] for n, d in r.databases.items()} == {"n8n": "n8n"}
    n8n = r.data["services"]["n8n"]
    assert n8n["versions"] == {"1.123.5": {}}  # ${N8N_VERSION:-1.123.5}: the default, N8N_VERSION unset
    assert n8n["health"] == {"http": "/healthz"}  # from the wget healthcheck
    assert n8n["env"]["DB_POSTGRESDB_DATABASE"] == "{db.n8n.name}"
    assert n8n["env"]["DB_POSTGRESDB_PASSWORD"] == "{db.n8n.password}"
    assert n8n["env"]["N8N_ENCRYPTION_KEY"] == "{secrets.n8n_encryption_key}"
    assert n8n["env"]["GENERIC_TIMEZONE"] == "Europe/Berlin"
    assert r.secrets == {"postgres_password": "POSTGRES_PASSWORD",
                         "postgres_non_root_password": "POSTGRES_NON_ROOT_PASSWORD",
                         "n8n_encryption_key": "N8N_ENCRYPTION_KEY"}
    c = r.data[COMPOSE_KEY]
    assert c["services"]["n8n"] == {"service": "n8n", "image": "docker.n8n.io/n8nio/n8n:{version}",
                                    "volumes": {"n8n_storage": "/home/node/.n8n"}, "ports": ["5678:5678"],
                                    "container_port": 5678, "healthcheck": True}
    assert c["project"] == "n8n" and c["volumes"]["n8n_storage"]["name"] == "n8n_n8n_storage"
    assert c["databases"]["n8n"] == {"users": ["n8n_app"], "password_secret": "postgres_non_root_password"}
    assert items(r) == [(compose_line("n8n", "./init-data.sh"), "compose.postgres.volumes",
                         "bind mount ./init-data.sh -> /docker-entrypoint-initdb.d/init-data.sh: data outside "
                         "named volumes is not captured by restore points")]


def test_the_process_environment_wins_over_dotenv():
    r = run("n8n", environ={"N8N_VERSION": "1.124.0", "POSTGRES_DB": "automations"})
    assert r.data["services"]["n8n"]["versions"] == {"1.124.0": {}}
    assert list(r.databases) == ["automations"]


def test_open_webui_with_pgvector():
    r = run("openwebui")
    assert (r.postgres["service"], r.postgres["major"], r.postgres["volume"]) == ("db", 16, "pgdata")
    assert {n: d["owner"] for n, d in r.databases.items()} == {"openwebui": "open-webui"}
    web = r.data["services"]["open-webui"]
    assert web["env"]["DATABASE_URL"] == web["env"]["PGVECTOR_DB_URL"] == "{db.openwebui.url}"
    assert web["health"] == {"http": "/health"} and web["depends_on"] == ["ollama"]
    assert web["versions"] == {"v0.6.34": {}}
    assert r.data[COMPOSE_KEY]["services"]["open-webui"]["container_port"] == 8080
    assert items(r) == [(compose_line("openwebui", "  ollama:"), "services.ollama.health",
                         "no healthcheck and no port")]
    assert r.data["services"]["ollama"]["health"] == {"http": "/"}  # a placeholder, flagged in the file too
    assert "ollama:\n    port: 1" in r.text and "TODO(import): no healthcheck" in r.text


def test_letta_with_pgvector_and_a_bind_mounted_cluster():
    r = run("letta")
    assert r.postgres["service"] == "letta_db" and r.postgres["major"] is None and r.postgres["volume"] is None
    assert r.databases["letta"]["owner"] == "letta_server" and r.databases["letta"]["users"] == ["letta"]
    env = r.data["services"]["letta_server"]["env"]
    assert env["LETTA_PG_URI"] == "{db.letta.url}"  # nested ${…:-…} defaults, resolved to the service letta-db
    assert env["OPENAI_API_KEY"] == "{secrets.openai_api_key}"
    assert "clickhouse" not in " ".join(r.databases)  # CLICKHOUSE_DATABASE is not a PostgreSQL database
    got = items(r)
    assert (compose_line("letta", "ankane/pgvector"), "postgres.major",
            "no PostgreSQL major in the image tag 'v0.5.1'") in got
    assert any(line == compose_line("letta", "./.persist/pgdata") and key == "compose.postgres.volume"
               for line, key, _ in got)
    assert (compose_line("letta", "letta_server:"), "services.letta_server.health.http", "no healthcheck") in got
    assert any(key == "services.letta_nginx.versions" and "moves" in p for _, key, p in got)  # stable-alpine…
    unset = {key for _, key, p in got if "not set" in p}
    assert unset == {"secrets.ollama_base_url.env", "secrets.clickhouse_database.env"}


def test_flowise_with_postgres():
    r = run("flowise")
    assert r.postgres["service"] == "flowise-db" and r.postgres["major"] == 16  # postgres:16.4
    assert {n: d["owner"] for n, d in r.databases.items()} == {"flowise": "flowise"}  # DATABASE_NAME from .env
    svc = r.data["services"]["flowise"]
    assert svc["env"]["DATABASE_NAME"] == "{db.flowise.name}" and svc["env"]["DATABASE_HOST"] == "{db.flowise.host}"
    assert svc["health"] == {"http": "/api/v1/ping"}  # curl http://localhost:${PORT}/api/v1/ping
    c = r.data[COMPOSE_KEY]["services"]["flowise"]
    assert c["container_port"] == 3000 and c["ports"] == ["3000:3000"] and c["env_file"] == [".env"]
    assert "JWT_AUTH_TOKEN_SECRET" not in svc["env"]  # env_file entries stay in the env file
    assert items(r) == [(compose_line("flowise", "~/.flowise"), "compose.services.flowise.volumes",
                         "bind mount ~/.flowise -> /root/.flowise: data outside named volumes is not captured "
                         "by restore points")]


def test_generic_bind_mount_dotenv_and_digests():
    r = run("generic")
    assert r.project == "homelab" and r.data["name"] == "homelab"  # from name:
    assert r.postgres["major"] == 15 and "@sha256:3f2d" in r.postgres["image"]  # digest kept
    notes = r.data[COMPOSE_KEY]["services"]["notes"]
    version = "sha256-9a8b7c6d5e4f"
    assert r.data["services"]["notes"]["versions"] == {version: {}}
    assert notes["image"] == "ghcr.io/example/notes@{digest}"
    assert notes["digests"] == {version: "sha256:9a8b7c6d5e4f30211223344556677889900aabbccddeeff00112233445566778"}
    assert r.data["services"]["worker"]["versions"] == {"2.4.1": {}}  # ${WORKER_TAG} from .env
    assert r.data[COMPOSE_KEY]["volumes"]["notes-cache"]["name"] == "notes_cache_v2"
    assert r.data[COMPOSE_KEY]["services"]["notes"]["volumes"] == {"notes-cache": "/srv/cache"}
    env = r.data["services"]["notes"]["env"]
    assert env["NOTES_DATABASE_URL"] == ("postgres+psycopg2://{db.notes.user}:{db.notes.password}@{db.notes.host}:"
                                         "{db.notes.port}/{db.notes.name}?sslmode=disable")
    assert env["NOTES_TITLE"] == "My notes {{beta}}"  # a literal brace, escaped for the template
    assert env["NOTES_PUBLIC_URL"] == "https://notes.{secrets.domain}"
    assert env["NOTES_ADMIN_TOKEN"] == "{secrets.notes_admin_token}"
    assert r.data["services"]["worker"]["health"] == {"command": "notes-worker ping"}
    assert r.data["services"]["worker"]["depends_on"] == ["notes"]  # the database service is not a service
    got = items(r)
    expect = [
        ("./uploads", "compose.services.notes.volumes", "bind mount ./uploads -> /srv/uploads"),
        ("- /srv/tmp", "compose.services.notes.volumes", "anonymous volume at /srv/tmp"),
        ("container_name", None, "container_name 'notes'"),
        ("NOTES_ADMIN_TOKEN", "secrets.notes_admin_token.env", "NOTES_ADMIN_TOKEN is written in the Compose file"),
        ("caddy:latest", "services.proxy.versions", "tag 'latest' moves"),
        ("./Caddyfile", "compose.services.proxy.volumes", "read-only bind mount ./Caddyfile"),
        ("DATABASE_URL=postgresql", "postgres.databases.notes.owner",
         "database 'notes' is used by 'notes' and 'worker'"),
    ]
    for needle, key, problem in expect:
        line = compose_line("generic", needle)
        assert any(g == (line, key, p) or (g[0] == line and g[1] == key and p.startswith(problem))
                   for g in got for p in [g[2]]), (needle, got)


def test_not_inferred_reads_as_file_line_and_key():
    r = run("openwebui")
    assert str(r.not_inferred[0]) == (f"ollama: no healthcheck and no port (docker-compose.yml:"
                                      f"{compose_line('openwebui', '  ollama:')}) → add services.ollama.health."
                                      "command (or .http) that tells it is working")


# -- secrets --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(FILES))
def test_no_secret_value_in_the_output(name):
    values = planted(name) | {PLANTED_ENV}
    assert len(values) >= 2
    r = run(name, environ={"N8N_ENCRYPTION_KEY": PLANTED_ENV, "OPENAI_API_KEY": PLANTED_ENV,
                           "WEBUI_SECRET_KEY": PLANTED_ENV, "DOMAIN_TOKEN": PLANTED_ENV})
    everything = r.text + json.dumps(r.to_dict())
    for v in values:
        assert v not in everything, v


def test_secrets_reference_variables_by_name():
    r = run("generic")
    secrets = r.data["secrets"]
    assert secrets["pg_superuser_password"] == {"env": "PG_SUPERUSER_PASSWORD", "staging": "same"}
    assert secrets["notes_db_password"] == {"env": "NOTES_DB_PASSWORD", "staging": "same"}
    assert r.data[COMPOSE_KEY]["databases"]["notes"]["password_secret"] == "notes_db_password"


def test_a_secret_variable_is_never_substituted(tmp_path):
    d = tmp_path / "leak"
    d.mkdir()
    (d / "docker-compose.yml").write_text(
        "services:\n  db:\n    image: postgres:16\n    environment:\n      POSTGRES_DB: ${APP_SECRET_KEY}\n"
        "  app:\n    image: app:1\n")
    (d / ".env").write_text("APP_SECRET_KEY=Planted-Guard-Value-77\n")
    r = import_compose(d / "docker-compose.yml", environ={})
    assert "Planted-Guard-Value-77" not in r.text + json.dumps(r.to_dict())
    assert list(r.databases) == ["app_secret_key"]  # named after the variable, flagged
    assert any(n.key == "postgres.databases.app_secret_key" for n in r.not_inferred)


def test_the_guard_refuses_to_write_a_secret_value(tmp_path):
    """The same value under a secret-looking key and an ordinary one: the ordinary one would be copied, so
    the import stops instead of writing it."""
    f = tmp_path / "docker-compose.yml"
    f.write_text("services:\n  db:\n    image: postgres:16\n  app:\n    image: app:1\n    environment:\n"
                 "      APP_API_KEY: Planted-Twice-Value-5\n      APP_GREETING: Planted-Twice-Value-5\n")
    with pytest.raises(BadInput, match="a secret value would appear in it"):
        import_compose(f, environ={})


# -- the manifest ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(FILES))
def test_the_whole_file_loads_with_the_real_loader(name, tmp_path):
    """The compose: section is part of the manifest schema: what the import writes loads as it is."""
    r = run(name)
    out = tmp_path / "stack.yaml"
    out.write_text(r.text)
    m = load_manifest(out)
    assert m.environments["production"].backend == "compose"
    assert set(m.services) == set(r.services)
    assert m.compose is not None and set(m.compose.services) == set(m.services)
    assert m.compose.postgres.service and m.compose.file


# -- pieces ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("ref", "major"), [
    ("postgres:16-alpine", 16), ("postgres:16.4-bookworm", 16), ("postgres:18", 18), ("postgres", None),
    ("postgres:latest", None), ("pgvector/pgvector:pg16", 16), ("pgvector/pgvector:0.8.1-pg18-trixie", 18),
    ("ankane/pgvector:v0.5.1", None), ("timescale/timescaledb:2.14.2-pg16", 16),
    ("timescale/timescaledb:latest-pg15", 15), ("timescale/timescaledb-ha:pg17", 17),
    ("timescale/timescaledb:2.14.2", None), ("supabase/postgres:15.1.0.147", 15),
    ("bitnami/postgresql:16.4.0-debian-12-r0", 16), ("docker.io/library/postgres:15@sha256:abc", 15),
])
def test_pg_major(ref, major):
    assert pg_major(Image.parse(ref)) == major


def test_image_parse():
    assert Image.parse("localhost:5000/acme/app:1.2@sha256:ff") == Image("localhost:5000/acme/app", "1.2", "sha256:ff")
    assert Image.parse("localhost:5000/acme/app").tag is None
    assert Image.parse("docker.n8n.io/n8nio/n8n:1.0").short == "n8nio/n8n"


def test_interpolation():
    i = Interpolator({"A": "1", "EMPTY": "", "DB_PASSWORD": "Planted-Interp-Pw", "HOST": "db"})
    assert i.resolve("x-${A}-$A-$$A").text == "x-1-1-$A"
    assert i.resolve("${EMPTY:-d}|${EMPTY-d}|${NOPE-d}|${A:+set}|${NOPE:+set}").text == "d||d|set|"
    assert i.resolve("${NOPE:-${A:-x}}/${NOPE:-${ALSO_NOPE:-deep}}").text == "1/deep"
    r = i.resolve("postgresql://u:${DB_PASSWORD}@${HOST}/${NAME:?set NAME}")
    assert "Planted-Interp-Pw" not in r.text and not r.known() and r.unset == ["NAME"]
    assert r.refs == ["DB_PASSWORD", "HOST", "NAME"] and "@db/" in r.text


def test_dotenv_format(tmp_path):
    p = tmp_path / ".env"
    p.write_text("# c\nexport A=1\nB='${A} raw'\nC=\"x ${A}\"\nD=plain # comment\nbad line\nE=\n")
    assert read_dotenv(p) == {"A": "1", "B": "${A} raw", "C": "x 1", "D": "plain", "E": ""}


@pytest.mark.parametrize(("text", "problem"), [
    ("services: [\n", "invalid YAML"),
    ("- a\n- b\n", "not a Compose file"),
    ("volumes:\n  data: {}\n", "no services: in this Compose file"),
    ("services:\n  web:\n    image: nginx:1.27\n", "no PostgreSQL service found"),
    ("services:\n  db:\n    image: postgres:16\n", "only PostgreSQL ('db') is defined"),
])
def test_bad_input(tmp_path, text, problem):
    f = tmp_path / "docker-compose.yml"
    f.write_text(text)
    with pytest.raises(BadInput) as e:
        import_compose(f, environ={})
    assert problem in e.value.message and re.search(r"docker-compose\.yml:\d+: ", e.value.message), e.value.message
    assert e.value.fix


# -- the CLI --------------------------------------------------------------------------------------------
def test_cli_writes_refuses_to_overwrite_and_forces(tmp_path, capsys):
    out = tmp_path / "stack.yaml"
    assert main(["import", "compose", str(FILES["openwebui"]), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "not inferred (1)" in printed and "services.ollama.health" in printed
    first = out.read_text()
    assert "compose:\n  file: " in first
    out.write_text("# mine\n")
    assert main(["import", "compose", str(FILES["openwebui"]), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "exists: not overwritten" in err and "--force" in err
    assert out.read_text() == "# mine\n"
    assert main(["import", "compose", str(FILES["openwebui"]), "-o", str(out), "--force"]) == 0
    assert out.read_text() == first


def test_cli_json_and_project(tmp_path, capsys):
    out = tmp_path / "sub" / "stack.yaml"
    code = main(["--json", "import", "compose", str(FILES["n8n"]), "-o", str(out), "--project", "pa"])
    doc = json.loads(capsys.readouterr().out)  # exactly one document
    assert code == 0 and doc["written"] == str(out) and doc["project"] == "pa"
    assert doc["manifest"][COMPOSE_KEY]["volumes"]["db_storage"]["name"] == "pa_db_storage"
    assert doc["manifest"][COMPOSE_KEY]["file"].endswith("n8n/docker-compose.yml")
    assert doc["not_inferred"][0]["key"] == "compose.postgres.volumes" and doc["pending_schema"]


@pytest.mark.parametrize("name", ["not-yaml", "no-services", "no-postgres", "list"])
def test_cli_bad_input_exit_2_one_line_nothing_written(name, tmp_path, capsys):
    out = tmp_path / "stack.yaml"
    code = main(["import", "compose", str(DATA / "bad" / f"{name}.yml"), "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and re.search(rf"{name}\.yml:\d+: ", err), err
    assert "(fix: " in err and not out.exists()
    assert main(["--json", "import", "compose", str(DATA / "bad" / f"{name}.yml"), "-o", str(out)]) == 2
    assert json.loads(capsys.readouterr().out)["exit_code"] == 2


def test_cli_compose_file_path_is_relative_to_the_stack(tmp_path, capsys):
    d = tmp_path / "stack"
    shutil.copytree(DATA / "n8n", d)
    assert main(["import", "compose", str(d / "docker-compose.yml"), "-o", str(d / "stack.yaml")]) == 0
    assert "  file: docker-compose.yml\n" in (d / "stack.yaml").read_text()
