"""Fault injection on the ``compose`` backend: the tool is killed (SIGKILL, as ``kill -9``) at every step
boundary of an upgrade and of a rollback of the reference Compose stack; ``resume`` must bring back
exactly the data of before: the databases' fingerprints, the files of the services' data volumes as the
service containers see them, the versions and image IDs, and nothing stray on the engine (one-off job or
helper containers, containers or volumes the project did not have).

The step names come from the operations' own step lists (``upgrade_steps``/``rollback_steps``), so a new
step is covered without editing this file. The kill and the CLI runs go through the shared helper
(tests/faultcli.py), as for the local backend (tests/integration/test_faults.py).

One production is shared by the module (an ``env up`` costs ~10 s); it has a known restore point taken
at the start. Each case sets its own preconditions: it first finishes any operation left open and, when
production does not hold the known point's data (a case before it failed), rolls back to that point.
Time it: ``pytest tests/compose/test_faults.py -s --durations=0``. Measured (21 cases, 2 cores shared with
five other jobs, load average 25-33): 32.5 min, each case 20-200 s, nearly all of it the services' container
starts; a rollback case pays three of them (its upgrade, the rollback, the resume). Far over the ~6 min
wished for: a quiet machine does one upgrade in ~12 s and one rollback in ~10 s (tests/compose/test_backend.py).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any

import pytest

from upgrade_infra.core.journal import Journal
from upgrade_infra.core.steps import step_names
from upgrade_infra.operations import upgrade
from upgrade_infra.operations.rollback import rollback_steps
from upgrade_infra.operations.upgrade import upgrade_steps

from ..faultcli import cli, killed
from .test_backend import PROJECT, SEED_MB, new_session

UPGRADE_STEPS = step_names(upgrade_steps("clone"))
ROLLBACK_STEPS = step_names(rollback_steps("clone"))
TARGET = {"assistant": "1.1.0", "automations": "1.1.0"}  # 1.1.0 migrates both schemas (and rewrites rows)
TO = [x for svc, v in TARGET.items() for x in ("--to", f"{svc}={v}")]
HELPER_LABEL = "org.upgrade-infra.helper"
JOB_LABEL = "org.upgrade-infra.job"
# what a service sees of its data volume: every regular file under its mount point and its sha256
VOLUME_DIGEST = (
    "import hashlib, json, os, sys\n"
    "out = {}\n"
    "for d, _, fs in os.walk(sys.argv[1]):\n"
    "    for f in fs:\n"
    "        p = os.path.join(d, f)\n"
    "        if os.path.isfile(p) and not os.path.islink(p):\n"
    "            out[p] = hashlib.sha256(open(p, 'rb').read()).hexdigest()\n"
    "print(json.dumps(out, sort_keys=True))\n")


@dataclass
class Held:
    """What production holds: versions, image IDs, database fingerprint, data volume files."""

    versions: dict[str, str]
    images: dict[str, str]
    fingerprint: Any
    volumes: dict[str, dict[str, str]]

    def differences(self, other: Held) -> list[str]:
        out = []
        if self.versions != other.versions:
            out.append(f"versions {other.versions} != {self.versions}")
        if self.images != other.images:
            out.append(f"images {other.images} != {self.images}")
        out += [str(d) for d in other.fingerprint.diff(self.fingerprint)]
        for svc in self.volumes:
            a, b = self.volumes[svc], other.volumes.get(svc, {})
            if a != b:
                changed = sorted(p for p in set(a) | set(b) if a.get(p) != b.get(p))
                out.append(f"{svc} data volume: {len(changed)} file(s) differ, e.g. {changed[:3]}")
        return out


def volume_files(env, service: str) -> dict[str, str]:
    """The files of ``service``'s data volume as its running container sees them."""
    target = env.spec.services[service].volumes[env.data_volume(service)]
    c = env.driver.container(env.project, env.compose_service(service))
    res = env.driver.exec(c, ["python3", "-c", VOLUME_DIGEST, target], user="0", timeout=60)
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)


def held(s) -> Held:
    from upgrade_infra.restore.fingerprint import fingerprint

    env = s.env("production")
    return Held(dict(env.record.versions), env.image_ids(), fingerprint(env),
                {svc: volume_files(env, svc) for svc in env.manifest.services})


def strays(engine, env, volumes: set[str]) -> list[str]:
    """Anything on the engine that a finished operation should not have left: helper or one-off job
    containers (of any project: they carry no project label of ours), a container of the project other
    than its running services, a volume or network the project did not have."""
    c = engine.client()
    wanted = {env.container_name(n) for n in (env.pg_service, *(env.compose_service(s) for s in env.manifest.services))}
    out = []
    for x in c.containers.list(all=True):
        if x.labels.get(HELPER_LABEL) or x.labels.get(JOB_LABEL):
            out.append(f"container {x.name} ({x.status}, {x.labels.get(HELPER_LABEL) or 'job'})")
        elif x.labels.get(PROJECT) == env.project and (x.name not in wanted or x.status != "running"):
            out.append(f"container {x.name} ({x.status})")
    label = {"label": f"{PROJECT}={env.project}"}
    out += [f"volume {v.name}" for v in c.volumes.list(filters=label) if v.name not in volumes]
    out += [f"network {n.name}" for n in c.networks.list(filters=label) if n.name != env.network]
    return out


@dataclass
class Known:
    rp: str
    held: Held
    volumes: set[str]


@pytest.fixture(scope="module")
def prod(docker_host):
    """The reference Compose production, up and seeded, a marker file in each data volume, and its known
    restore point (clone); destroyed at the end."""
    import shutil

    from upgrade_infra.restore import points as snapshots

    def edit(d):
        d["policies"]["watch_window_s"] = 0  # the watch step is still a boundary; its window costs 5 s a case
        # both apps start in one wave once PostgreSQL is healthy, as the Compose file has them (automations
        # calls the assistant only when a workflow runs): every start of a case costs one app start, not two
        d["services"]["automations"].pop("depends_on", None)

    s, root = new_session(edit)
    try:
        env = s.env("production")
        env.up(seed_mb=SEED_MB)
        for svc in env.manifest.services:
            d = env.data_dir(svc)
            (d / "marker.txt").write_text(f"{svc}: before every fault\n")
            os.chown(d / "marker.txt", d.stat().st_uid, d.stat().st_gid)  # the service's own file
        rp = snapshots.create(env, "clone", label="compose faults: the known point")["restore_point"]["id"]
        known = Known(rp, held(s), {v.name for v in docker_host.client().volumes.list(
            filters={"label": f"{PROJECT}={env.project}"})})
        assert all(known.held.volumes.values()) and known.held.fingerprint.total_rows() > 0
        yield s, known
    finally:
        try:
            s.env("production").destroy()
        finally:
            shutil.rmtree(root, ignore_errors=True)


def at_known_point(s, known: Known) -> None:
    """Precondition of every case: no operation open, production healthy at the known point's data."""
    from upgrade_infra.operations import recovery, rollback

    env = s.env("production")
    if Journal(s.state, "production").incomplete() is not None:
        recovery.recover(env)
        env = s.env("production")
    try:
        off = bool(held(s).differences(known.held)) or not env.status().healthy
    except Exception:  # noqa: BLE001 - a service container missing: not at the known point either
        off = True
    if off:
        rollback.rollback(env, to=known.rp)
    assert_at_known_point(s, known, "precondition")


def assert_at_known_point(s, known: Known, when: str) -> None:
    env = s.env("production")
    assert Journal(s.state, "production").incomplete() is None
    diff = held(s).differences(known.held)
    assert not diff, f"{when}: {diff}"
    assert env.status().healthy, env.status().to_dict()
    left = strays(s.env("production").engine, env, known.volumes)
    assert not left, f"{when}: left on the engine: {left}"


@pytest.mark.parametrize("step", UPGRADE_STEPS)
def test_killed_during_upgrade_then_resume(prod, docker_host, step):
    s, known = prod
    at_known_point(s, known)
    t0 = time.monotonic()
    r = cli(s, "upgrade", "production", *TO, fault=f"upgrade.{step}")
    assert killed(r, f"upgrade.{step}"), (r.returncode, r.stderr[-3000:])
    inc = Journal(s.state, "production").incomplete()
    assert inc.kind == "upgrade" and inc.steps[-1].name == step and inc.steps[-1].status == "interrupted"
    t1 = time.monotonic()
    rec = cli(s, "resume", "production")
    assert rec.returncode == 0, rec.stderr[-3000:]
    out = json.loads(rec.stdout)
    assert [x["kind"] for x in out["recovered"]] == ["upgrade"], out
    print(f"\nupgrade killed at {step}: {t1 - t0:.1f}s, resume ({out['recovered'][0]['action']}) "
          f"{time.monotonic() - t1:.1f}s")
    assert_at_known_point(s, known, f"after the upgrade killed at {step} and resume")
    assert Journal(s.state, "production").get(inc.op).outcome == "rolled-back"


@pytest.mark.parametrize("step", ROLLBACK_STEPS)
def test_killed_during_rollback_then_resume(prod, docker_host, step):
    s, known = prod
    at_known_point(s, known)
    t0 = time.monotonic()
    up = upgrade.upgrade(s.env("production"), TARGET)  # the precondition, in-process (one CLI start less)
    assert up.outcome == "succeeded", up.to_dict()
    assert s.env("production").record.versions == TARGET
    t1 = time.monotonic()
    r = cli(s, "rollback", "production", fault=f"rollback.{step}")
    assert killed(r, f"rollback.{step}"), (r.returncode, r.stderr[-3000:])
    inc = Journal(s.state, "production").incomplete()
    assert inc.kind == "rollback" and inc.steps[-1].name == step and inc.steps[-1].status == "interrupted"
    if step == "swap_databases":  # half swapped: every other command is refused until it is finished
        blocked = cli(s, "upgrade", "production", *TO)
        assert blocked.returncode == 2 and "resume production" in blocked.stderr, blocked.stderr
    t2 = time.monotonic()
    rec = cli(s, "resume", "production")
    assert rec.returncode == 0, rec.stderr[-3000:]
    out = json.loads(rec.stdout)
    assert [x["kind"] for x in out["recovered"]] == ["rollback"], out
    print(f"\nupgrade {t1 - t0:.1f}s, rollback killed at {step}: {t2 - t1:.1f}s, resume "
          f"{time.monotonic() - t2:.1f}s")
    assert_at_known_point(s, known, f"after the rollback killed at {step} and resume")
