"""YAML loading that remembers where every key came from, so errors can name the line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from upgrade_infra.core.errors import ManifestError, ManifestIssue


@dataclass
class YamlSource:
    path: Path
    data: Any

    def line_of(self, loc: tuple) -> int | None:
        """1-based line of the deepest part of ``loc`` present in the document."""
        node, line = self.data, None
        for part in loc:
            if isinstance(node, CommentedMap) and part in node:
                line = node.lc.key(part)[0] + 1
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
                line = node.lc.item(part)[0] + 1
                node = node[part]
            else:
                break
        if line is None and isinstance(self.data, CommentedMap):
            return 1
        return line


def load_yaml(path: Path) -> YamlSource:
    yaml = YAML(typ="rt")
    try:
        text = path.read_text()
    except OSError as e:
        raise ManifestError([ManifestIssue(str(path), None, "(file)", f"cannot read: {e.strerror}",
                                           "check the path and permissions")]) from None
    try:
        data = yaml.load(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise ManifestError([ManifestIssue(str(path), (mark.line + 1) if mark else None, "(syntax)",
                                           f"invalid YAML: {e.problem or e.context}",
                                           "fix the indentation/quoting at that line")]) from None
    if not isinstance(data, CommentedMap):
        raise ManifestError([ManifestIssue(str(path), 1, "(top level)", "expected a mapping",
                                           "start from docs/reference/stack.reference.yaml")])
    return YamlSource(path, data)
