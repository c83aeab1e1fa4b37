"""Generate the tutorial's expected output from a real run.

Usage: python tools/tutorial_outputs.py [--page docs/tutorials/getting-started.md]

Every step of the page is marked ``<!-- step: ID exit=N -->`` followed by a ```bash block with one
``upgrade-infra …`` command. The commands run, exactly as written, against a private copy of the
reference stack (ports in ``$UPGRADE_INFRA_TEST_PORTS``, fresh state dir), and each one's output is
written to ``docs/tutorials/outputs/ID.txt``, which the page includes. The exit code must be the one
the page announces. Paths of the private copy are shown as the reader will see them
(``.upgrade-infra/``), and its ports as the reference stack's (25400…, staging 26000…).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
STEP = re.compile(r"<!-- step: (?P<id>[\w-]+) exit=(?P<exit>\d) -->\s*```bash\n(?P<cmd>upgrade-infra [^\n]+)\n```")


def steps(page: Path) -> list[tuple[str, int, str]]:
    return [(m["id"], int(m["exit"]), re.sub(r"\s+#.*$", "", m["cmd"]).strip()) for m in STEP.finditer(page.read_text())]


def normalize(text: str, root: Path, port_map: dict[int, int]) -> str:
    text = text.replace(str(root / "state"), ".upgrade-infra").replace(str(root / "stack"), "examples/pa-stack")
    text = re.sub(r"/tmp/uinfra-tutorial-\w+", "…", text)
    for mine, ref in sorted(port_map.items(), key=lambda kv: -kv[0]):
        text = re.sub(rf"(?<!\d){mine}(?!\d)", str(ref), text)
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines()) + "\n"


def main() -> int:
    from upgrade_infra.core import runner
    from upgrade_infra.stack.manifest import load_manifest
    from upgrade_infra.stack.private_copy import private_copy

    ap = argparse.ArgumentParser()
    ap.add_argument("--page", default=str(REPO / "docs" / "tutorials" / "getting-started.md"))
    args = ap.parse_args()
    page = Path(args.page)
    out_dir = page.parent / "outputs"
    out_dir.mkdir(exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="uinfra-tutorial-"))
    os.chmod(root, 0o711)  # PostgreSQL runs as the postgres user: it must traverse into the state dir
    stack = private_copy(root / "stack", REPO / "examples" / "pa-stack" / "stack.yaml")
    m = load_manifest(stack)
    ref = load_manifest(REPO / "examples" / "pa-stack" / "stack.yaml")
    port_map: dict[int, int] = {}
    for name, env in m.environments.items():
        for i in range(10):
            port_map[env.port_base + i] = ref.environments[name].port_base + i
    lo = m.staging.port_range[0]
    for i in range(m.staging.port_range[1] - lo + 1):
        port_map[lo + i] = ref.staging.port_range[0] + i
    env = runner.base_env({"UPGRADE_INFRA_STACK": str(stack), "UPGRADE_INFRA_STATE_DIR": str(root / "state"),
                           "COLUMNS": "110", "NO_COLOR": "1", "TERM": "dumb"})
    exe = shutil.which("upgrade-infra") or str(Path(sys.executable).parent / "upgrade-infra")
    failed = 0
    try:
        for step_id, expect, cmd in steps(page):
            t0 = time.monotonic()
            r = runner.run([exe, *shlex.split(cmd)[1:]], env=env, cwd=root / "stack", timeout=900, check=False)
            text = normalize(r.stdout + r.stderr, root, port_map)
            (out_dir / f"{step_id}.txt").write_text(text + (f"(exit code {r.returncode})\n" if r.returncode else ""))
            ok = r.returncode == expect
            failed += not ok
            print(f"{'ok ' if ok else 'BAD'} {step_id}: exit {r.returncode} (page says {expect}) "
                  f"in {time.monotonic() - t0:.1f}s: {cmd}")
    finally:
        runner.run([exe, "stage", "destroy", "staging"], env=env, cwd=root / "stack", check=False, timeout=300)
        runner.run([exe, "env", "down", "production"], env=env, cwd=root / "stack", check=False, timeout=300)
        shutil.rmtree(root, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
