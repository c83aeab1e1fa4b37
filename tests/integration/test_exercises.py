"""The learning-path exercises (docs/tutorials/learning-paths.md), done the way a reader does them:
every exercise's commands and its *Check* block are read from the page and run with bash, in order, on
one fresh copy of the reference stack (production up on 1.0.0, as the tutorial leaves it), from a
working directory laid out like the repository root. A line marked ``# exits N`` must exit N, every
other line 0. Exercise 6 asks the reader to write a check: the page's own solution is applied.

A drifted exercise (a renamed option, a changed JSON field, a release that no longer fails) fails here.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from ..conftest import PA_STACK, REPO, running_stack

PAGE = REPO / "docs" / "tutorials" / "learning-paths.md"
EXITS = re.compile(r"\s+#\s*exits\s+(\d+)\s*$")
FENCE = re.compile(r"^( *)```(\w+)\n(.*?)^\1```", re.S | re.M)


@dataclass
class Exercise:
    number: int
    title: str
    steps: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    solution: list[dict] = field(default_factory=list)  # checks to add to the manifest (exercise 6)


def exercises(text: str) -> list[Exercise]:
    found = []
    parts = re.split(r"^\*\*Exercise (\d+): ([^*]+)\*\*", text, flags=re.M)
    for number, title, body in zip(parts[1::3], parts[2::3], parts[3::3], strict=True):
        body = re.split(r"^## ", body, flags=re.M)[0]
        ex = Exercise(int(number), title.strip())
        check_at = body.find("*Check*")
        for m in FENCE.finditer(body):
            lang, code = m.group(2), m.group(3)
            if lang == "yaml" and m.group(1):  # indented: the solution inside the admonition
                ex.solution += YAML(typ="safe").load(re.sub(rf"(?m)^{m.group(1)}", "", code))
            elif lang == "bash":
                lines = [ln for ln in code.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
                (ex.checks if 0 <= check_at < m.start() else ex.steps).extend(lines)
        found.append(ex)
    return found


def script(ex: Exercise) -> str:
    """The exercise as bash: each line run as typed, its exit status compared with what the page says."""
    out = []
    for i, line in enumerate([*ex.steps, *ex.checks], 1):
        m = EXITS.search(line)
        want = int(m.group(1)) if m else 0
        cmd = line[:m.start()] if m else line
        out.append(f"echo {shlex.quote('$ ' + cmd)}\n{cmd}\nrc=$?\n"
                   f"if [ $rc -ne {want} ]; then echo {shlex.quote(f'line {i}: ')}\"exited $rc, "
                   f"the page says {want}: \"{shlex.quote(cmd)} >&2; exit 99; fi")
    return "\n".join(out) + "\n"


def test_the_page_has_seven_checkable_exercises():
    found = exercises(PAGE.read_text())
    assert [e.number for e in found] == list(range(1, 8))
    assert all(e.checks for e in found), [e.number for e in found if not e.checks]
    assert found[5].solution and found[5].solution[0]["smoke"] is True
    assert 'jq -e' in script(found[0]) and "exits 1" not in script(found[0])


def test_a_wrong_exit_status_fails_the_script(tmp_path):
    ex = Exercise(0, "planted", steps=["true", "false  # exits 1"], checks=["test -d /"])
    assert subprocess.run(["bash", "-c", script(ex)], capture_output=True).returncode == 0
    ex.checks.append("false")
    r = subprocess.run(["bash", "-c", script(ex)], capture_output=True, text=True)
    assert r.returncode == 99 and "line 4: exited 1, the page says 0: false" in r.stderr


@pytest.fixture(scope="module")
def reader():
    """A reader's shell: the reference stack's production up on 1.0.0, the CLI on PATH, a working dir
    with the repository's docs/ (exercise 7 reads docs/monitoring/alerts.yml)."""
    missing = [t for t in ("jq", "promtool") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"the exercises use {', '.join(missing)} (apt-get install jq prometheus)")
    cli = Path(sys.executable).parent / "upgrade-infra"
    assert cli.exists(), f"{cli}: install the package (pip install -e .) so readers' `upgrade-infra` exists"
    with running_stack(PA_STACK / "stack.yaml", "uinfra-learn-", float(os.environ.get("UPGRADE_INFRA_TEST_SEED_MB", "4"))) as s:
        work = s.state.root.parent / "work"
        work.mkdir()
        (work / "docs").symlink_to(REPO / "docs")
        env = {**os.environ, "PATH": f"{cli.parent}:{os.environ['PATH']}", "UPGRADE_INFRA_STACK": str(s.stack),
               "UPGRADE_INFRA_STATE_DIR": str(s.state.root)}
        env.pop("UPGRADE_INFRA_FAULT", None)
        yield s, work, env


@pytest.mark.slow
@pytest.mark.parametrize("ex", exercises(PAGE.read_text()), ids=lambda e: f"exercise-{e.number}")
def test_exercise_as_a_reader_does_it(reader, ex):
    s, work, env = reader
    if ex.solution:
        yaml = YAML()
        data = yaml.load(s.stack.read_text())
        data["checks"].extend(ex.solution)
        with open(s.stack, "w") as f:
            yaml.dump(data, f)
    r = subprocess.run(["bash", "-c", script(ex)], cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"exercise {ex.number} ({ex.title}):\n{r.stderr[-3000:]}\n--- output ---\n{r.stdout[-3000:]}"
