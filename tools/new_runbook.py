"""Write a runbook notebook (no outputs) from a compact Python description.

Usage: python tools/new_runbook.py SPEC.py OUT.ipynb, where SPEC.py defines ``TITLE``, ``BUDGET_S``
and ``CELLS``: a list of ("md", text) / ("params", code) / ("code", code[, budget_s]) tuples.
Runbooks are edited as notebooks afterwards; this only saves typing JSON by hand.
"""

from __future__ import annotations

import runpy
import sys

import nbformat


def build(spec: dict) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["upgrade_infra"] = {"budget_s": spec["BUDGET_S"], "title": spec["TITLE"]}
    for entry in spec["CELLS"]:
        kind, text = entry[0], entry[1].strip("\n")
        if kind == "md":
            nb.cells.append(nbformat.v4.new_markdown_cell(text))
            continue
        cell = nbformat.v4.new_code_cell(text)
        if kind == "params":
            cell.metadata["tags"] = ["parameters"]
        elif len(entry) > 2:
            cell.metadata["upgrade_infra"] = {"budget_s": entry[2]}
        nb.cells.append(cell)
    return nb


if __name__ == "__main__":
    nbformat.write(build(runpy.run_path(sys.argv[1])), sys.argv[2])
