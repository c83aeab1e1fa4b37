"""Human output sent to a pipe or file: tables keep their natural width, nothing is cut at 80 columns."""

from __future__ import annotations

import os
import subprocess
import sys

from upgrade_infra.operations.session import Session

from .conftest import write_stack

LONG = "production-replica-in-the-secondary-site"  # 40 characters, the longest name the manifest allows


def test_status_table_piped_is_not_cut(private_tmp):
    def edit(data):
        acc = data["environments"].pop("acceptance")  # its port block, under a long name
        data["environments"][LONG] = {"port_base": acc["port_base"],
                                      "versions": {"assistant": "1.1.0-locking", "automations": "1.1.0-locking"}}

    stack = write_stack(private_tmp / "stack", edit=edit)
    s = Session(stack, private_tmp / "state")
    s.env(LONG).save()  # recorded, nothing started: status lists it with its services stopped
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    r = subprocess.run([sys.executable, "-m", "upgrade_infra", "--stack", str(stack), "--state-dir",
                        str(private_tmp / "state"), "status"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "…" not in r.stdout, r.stdout
    row = next(line for line in r.stdout.splitlines() if LONG in line)  # whole, on one line
    assert "1.1.0-locking" in row and "automations" not in row  # one service per row, not folded
    assert max(len(line) for line in r.stdout.splitlines()) > 80
