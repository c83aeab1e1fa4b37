"""Optional parts installed through extras: imported lazily, with a message naming the extra."""

from __future__ import annotations

import importlib
from typing import Any

from upgrade_infra.core.errors import BadInput

# module -> (extra, what needs it)
EXTRAS = {"matplotlib": "docs", "playwright": "browser", "pgserver": "pg16", "squawk": "migration"}


class MissingExtra(BadInput):
    """An optional dependency is not installed."""


def require(module: str, what: str) -> Any:
    """Import ``module`` or raise :class:`MissingExtra` naming the ``pip install`` that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        extra = EXTRAS.get(top)
        pkg = f"'upgrade-infra[{extra}]'" if extra else top
        raise MissingExtra(f"{what} needs {top}, which is not installed: pip install {pkg}",
                           fix=f"pip install {pkg}", module=top, extra=extra) from None


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (charts are written to files, never shown)."""
    mpl = require("matplotlib", "drawing charts")
    mpl.use("Agg")
    return require("matplotlib.pyplot", "drawing charts")
