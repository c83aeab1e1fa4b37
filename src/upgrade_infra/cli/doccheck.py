"""The docs tested against the CLI: every ``upgrade-infra …`` command quoted in the docs, the README
and the runbooks' markdown cells is parsed against the real typer/click command tree.

A command is taken from fenced code blocks (lines starting ``upgrade-infra`` or ``$ upgrade-infra``,
also after ``&&``) and from inline code spans that start with ``upgrade-infra ``. It is checked for:
an existing command path, options that the command (or, before the command, the CLI) has, values
given to options that take one, the number of positional arguments, required arguments present
(unless the text elides them with ``…``), and global options placed before the command.

Placeholders (``ENV``, ``<name>``, ``[--dry-run]``) are accepted where an argument or an optional
part goes. The result feeds the acceptance report's Documentation row.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PROG = "upgrade-infra"
_FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")
_INLINE = re.compile(r"`(upgrade-infra [^`]+)`")
_SHELL_OPS = {"|", "||", "&&", ";", ">", ">>", "<", "2>", "2>&1", "&"}
_ELIDED = {"…", "...", "[OPTIONS]", "[ARGS]", "COMMAND", "[ARGS]..."}


@dataclass
class Quoted:
    """One command quoted in a document."""

    file: str
    line: int
    text: str

    def argv(self) -> list[str]:
        text = re.sub(r"\s+#.*$", "", self.text).strip()
        try:
            tokens = shlex.split(text)
        except ValueError:
            tokens = text.split()
        out: list[str] = []
        for t in tokens[1:]:
            if t in _SHELL_OPS or t.startswith(("|", ">")):
                break
            if t.startswith("[") and not t.startswith("[OPTIONS") and not t.startswith("[ARGS"):
                t = t[1:]  # `[--to RESTORE_POINT]`: an optional part, still checked
            if t.endswith("]") and "[" not in t:
                t = t[:-1]
            if t:
                out.append(t)
        return out


@dataclass
class Finding:
    file: str
    line: int
    command: str
    problem: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: `{self.command}`: {self.problem}"


# -- extraction ---------------------------------------------------------------------------------
def _from_markdown(text: str, file: str, line0: int = 0) -> list[Quoted]:
    found: list[Quoted] = []
    lines = text.splitlines()
    fence, lang, i = None, "", 0
    while i < len(lines):
        raw = lines[i]
        m = _FENCE.match(raw)
        if m and fence is None:
            fence, lang = m.group(2), m.group(3).lower()
            i += 1
            continue
        if fence is not None and raw.strip().startswith(fence):
            fence = None
            i += 1
            continue
        if fence is not None:
            if lang not in ("mermaid", "yaml", "json", "python", "text", "toml", "promql"):
                start = i
                joined = raw
                while joined.rstrip().endswith("\\") and i + 1 < len(lines):
                    i += 1
                    joined = joined.rstrip()[:-1] + " " + lines[i].strip()
                for part in re.split(r"&&|;|\|\|", joined):
                    part = part.strip().removeprefix("$ ").strip()
                    if part.startswith(PROG + " ") or part == PROG:
                        found.append(Quoted(file, line0 + start + 1, part))
        else:
            for m in _INLINE.finditer(raw):
                found.append(Quoted(file, line0 + i + 1, m.group(1)))
        i += 1
    return found


def extract(path: Path, root: Path) -> list[Quoted]:
    rel = str(path.relative_to(root))
    if path.suffix == ".ipynb":
        nb = json.loads(path.read_text())
        out: list[Quoted] = []
        for n, cell in enumerate(nb.get("cells", [])):
            if cell.get("cell_type") == "markdown":
                src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
                out += [Quoted(f"{rel} (cell {n})", q.line, q.text) for q in _from_markdown(src, rel)]
        return out
    return _from_markdown(path.read_text(), rel)


def documents(root: Path) -> list[Path]:
    """The docs, the README, the changelog and the runbooks (markdown cells)."""
    files = sorted((root / "docs").rglob("*.md")) + sorted((root / "runbooks").glob("*.ipynb"))
    files += [p for p in (root / "README.md", root / "CHANGELOG.md") if p.exists()]
    return files


# -- checking against the click tree --------------------------------------------------------------
def _is_group(cmd: Any) -> bool:
    return hasattr(cmd, "commands")  # typer vendors click: duck-type instead of isinstance


def _options(cmd: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in cmd.params:
        if p.param_type_name == "option":
            for name in [*p.opts, *p.secondary_opts]:
                out[name] = p
    out.setdefault("--help", None)
    return out


def _takes_value(opt: Any) -> bool:
    return opt is not None and not opt.is_flag and not opt.count


def _placeholder(token: str) -> bool:
    return token.startswith(("<", "[")) or token in _ELIDED or bool(re.fullmatch(r"[A-Z][A-Z0-9_]*", token))


def check_argv(argv: list[str], root: Any) -> list[str]:
    """Problems with ``upgrade-infra ARGV`` (empty when the CLI accepts it)."""
    problems: list[str] = []
    globals_ = _options(root)
    cmd, path, i = root, [PROG], 0
    elided = any(t in _ELIDED or t.endswith("…") for t in argv)
    # global options, then the command path
    while _is_group(cmd):
        while i < len(argv) and argv[i].startswith("-"):
            name = argv[i].split("=", 1)[0]
            opts = _options(cmd)
            if name not in opts:
                problems.append(f"{' '.join(path)} has no option {name}")
                return problems
            i += 1 if "=" in argv[i] or not _takes_value(opts[name]) else 2
        if i >= len(argv):
            if not elided and cmd is not root:
                problems.append(f"{' '.join(path)} needs a command: {', '.join(cmd.commands)}")
            return problems
        token = argv[i]
        if _placeholder(token):
            return problems  # `upgrade-infra --stack PATH … COMMAND`: a pattern, not a command
        sub = cmd.commands.get(token)
        if sub is None:
            problems.append(f"{' '.join(path)} has no command {token!r} (has: {', '.join(cmd.commands)})")
            return problems
        cmd, path, i = sub, [*path, token], i + 1
    opts = _options(cmd)
    arguments = [p for p in cmd.params if p.param_type_name == "argument"]
    positional: list[str] = []
    while i < len(argv):
        t = argv[i]
        if t == "--":  # the end of options: the rest is the command's payload (`exec ENV SVC -- CMD…`)
            positional.extend(argv[i + 1:][:1])
            break
        if t.startswith("-") and len(t) > 1 and not re.fullmatch(r"-\d+(\.\d+)?", t):
            name = t.split("=", 1)[0]
            if name not in opts:
                where = (f"; {name} is a global option: put it before the command "
                         f"(`{PROG} {name} {' '.join(path[1:])} …`)") if name in globals_ else ""
                problems.append(f"`{' '.join(path)}` has no option {name}{where}")
            elif _takes_value(opts[name]) and "=" not in t:
                if i + 1 >= len(argv) or (argv[i + 1].startswith("--") and not _placeholder(argv[i + 1])):
                    problems.append(f"option {name} of `{' '.join(path)}` needs a value")
                i += 1
            i += 1
            continue
        positional.append(t)
        i += 1
    unlimited = any(a.nargs == -1 for a in arguments)
    most = sum(max(a.nargs, 0) for a in arguments)
    real = [p for p in positional if p not in _ELIDED]
    if not unlimited and len(real) > most:
        problems.append(f"`{' '.join(path)}` takes {most} argument(s), got {len(real)}: {' '.join(real)}")
    required = [a for a in arguments if a.required]
    if not elided and len(real) < len(required):
        missing = [(a.metavar or a.name or "?").upper() for a in required[len(real):]]
        problems.append(f"`{' '.join(path)}` needs argument(s) {', '.join(missing)}")
    return problems


def cli_root() -> Any:
    import typer

    from upgrade_infra.cli import app

    return typer.main.get_command(app)


def check(root: Path, files: list[Path] | None = None) -> tuple[list[Quoted], list[Finding]]:
    """Every quoted command in the docs and what is wrong with each."""
    cli = cli_root()
    quoted = [q for f in (files or documents(root)) for q in extract(f, root)]
    findings = [Finding(q.file, q.line, q.text, p) for q in quoted for p in check_argv(q.argv(), cli)]
    return quoted, findings


_FIELD = re.compile(r"`((?:policies|staging|migration|postgres|seed)\.[a-z_]+(?:\.[a-z_]+)*)`")
_PATH = re.compile(r"`((?:docs|examples|src|tests|runbooks|benchmarks|tools)/[\w./-]*)`")


def manifest_field(dotted: str) -> bool:
    """``policies.watch_window_s`` names a field of the manifest model (maps' keys are free)."""
    from pydantic import BaseModel

    from upgrade_infra.stack.manifest import Manifest, _flatten

    model: Any = Manifest
    for part in dotted.split("."):
        fields = getattr(model, "model_fields", None)
        if fields is None:
            return True  # below a dict: keys are the user's names
        if part not in fields:
            return False
        ann = fields[part].annotation
        model = next((a for a in _flatten(ann) if isinstance(a, type) and issubclass(a, BaseModel)), None)
    return True


def _python_name(dotted: str) -> bool:
    """``staging.lifecycle.reset``: a function of the library, quoted as such (module path, then attributes)."""
    import importlib

    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module("upgrade_infra." + ".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def check_names(root: Path, files: list[Path] | None = None) -> list[Finding]:
    """Manifest fields (``policies.…``) and repository paths quoted in prose exist."""
    out: list[Finding] = []
    for f in files or documents(root):
        rel = str(f.relative_to(root))
        for n, line in enumerate(f.read_text().splitlines(), 1):
            for m in _FIELD.finditer(line):
                if not manifest_field(m.group(1)) and not _python_name(m.group(1)):
                    out.append(Finding(rel, n, m.group(1), "no such manifest field"))
            for m in _PATH.finditer(line):
                if not (root / m.group(1)).exists() and "<" not in m.group(1):
                    out.append(Finding(rel, n, m.group(1), "no such file or directory in the repository"))
    return out


def summary(root: Path) -> dict[str, Any]:
    quoted, findings = check(root)
    findings += check_names(root)
    return {"commands": len(quoted), "files": len({q.file.split(" (")[0] for q in quoted}),
            "mismatches": len(findings), "findings": [asdict(f) for f in findings][:50]}
