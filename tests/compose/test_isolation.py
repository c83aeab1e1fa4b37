"""Staging cannot reach production: two projects of the example file on one engine (real containers).

From a container of the staging-like project, the production-like project's service and container names
do not resolve (or resolve only to staging's own containers) and production's container addresses do not
answer; the same probe from inside production reaches them (so the probe itself works)."""

from __future__ import annotations

import json

PROBE = r"""
import json, socket, sys
names, targets = json.loads(sys.argv[1]), json.loads(sys.argv[2])
out = {"resolve": {}, "connect": {}}
for n in names:
    try:
        out["resolve"][n] = sorted({a[4][0] for a in socket.getaddrinfo(n, None, socket.AF_INET)})
    except socket.gaierror:
        out["resolve"][n] = []
for ip, port in targets:
    s = socket.socket(); s.settimeout(2)
    try:
        s.connect((ip, port)); out["connect"][f"{ip}:{port}"] = "open"
    except OSError as e:
        out["connect"][f"{ip}:{port}"] = type(e).__name__
    finally:
        s.close()
print(json.dumps(out))
"""


def _ips(container) -> list[str]:
    container.reload()
    return [n["IPAddress"] for n in container.attrs["NetworkSettings"]["Networks"].values()]


def _probe(driver, container, names, targets) -> dict:
    r = driver.exec(container, ["python3", "-c", PROBE, json.dumps(names), json.dumps(targets)], timeout=60)
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


def test_staging_cannot_resolve_or_reach_production(new_project, driver):
    prod = new_project("prod")
    prod.up()
    staging = new_project("stag")
    staging.up("postgres")

    prod_c = {s: driver.container(prod.name, s) for s in ("postgres", "assistant", "automations")}
    stag_pg = driver.container(staging.name, "postgres")
    prod_ips = {s: _ips(c)[0] for s, c in prod_c.items()}
    stag_ip = _ips(stag_pg)[0]
    assert not set(prod_ips.values()) & {stag_ip}

    names = ["assistant", "automations", "postgres", *(c.name for c in prod_c.values())]
    targets = [[prod_ips["postgres"], 5432], [prod_ips["assistant"], 8000], [prod_ips["automations"], 8000]]

    # positive control: inside production the same probe resolves and reaches everything
    inside = _probe(driver, prod_c["assistant"], names, targets)
    assert inside["resolve"]["assistant"] == [prod_ips["assistant"]]
    assert inside["resolve"]["postgres"] == [prod_ips["postgres"]]
    assert set(inside["connect"].values()) == {"open"}, inside

    from_staging = _probe(driver, stag_pg, names, [*targets, [stag_ip, 5432]])
    print(f"from staging: {from_staging}")
    assert from_staging["resolve"]["assistant"] == [] and from_staging["resolve"]["automations"] == []
    assert from_staging["resolve"]["postgres"] == [stag_ip], "'postgres' must be staging's own database"
    for c in prod_c.values():
        assert from_staging["resolve"][c.name] == [], c.name
    for ip, port in targets:
        assert from_staging["connect"][f"{ip}:{port}"] != "open", (ip, port)
    assert from_staging["connect"][f"{stag_ip}:5432"] == "open"  # staging's own database does answer
