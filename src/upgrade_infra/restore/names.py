"""Names of the databases a restore point, a rollback and a quarantine create (pure functions).

Database names stay below PostgreSQL's 63-byte limit: manifest names are at most 40 characters.
"""

from __future__ import annotations


def short(ident: str) -> str:
    """``rp-1a2b3c4d`` / ``op-1a2b3c4d`` -> ``1a2b3c4d``."""
    return ident.split("-", 1)[-1]


def clone_name(db: str, rp_id: str) -> str:
    return f"{db}__rp_{short(rp_id)}"


def spare_name(db: str, rp_id: str) -> str:
    return f"{db}__rs_{short(rp_id)}"


def staged_name(db: str, op: str) -> str:
    return f"{db}__r_{short(op)}"


def quarantine_name(db: str, op: str) -> str:
    return f"{db}__q_{short(op)}"


def is_ours(name: str) -> bool:
    return any(tag in name for tag in ("__rp_", "__rs_", "__r_", "__q_"))
