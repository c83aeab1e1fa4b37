"""Environment contract of both services (read once at start-up)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


class ConfigError(RuntimeError):
    """A required setting is missing or malformed (exit code 2)."""


def _flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


def _optional(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def lock_seconds() -> float:
    """PA_LOCK_SECONDS (default 5), used by the 1.1.0-locking migration."""
    raw = os.environ.get("PA_LOCK_SECONDS", "").strip() or "5"
    try:
        return max(0.0, float(raw))
    except ValueError:
        raise ConfigError(f"PA_LOCK_SECONDS must be a number, got {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    data_dir: Path | None
    secret_key: str | None
    assistant_url: str | None
    outbound_url: str | None
    triggers_enabled: bool
    mail_enabled: bool

    @classmethod
    def from_env(cls) -> Settings:
        data_dir = _optional("PA_DATA_DIR")
        return cls(
            database_url=_optional("DATABASE_URL"),
            data_dir=Path(data_dir) if data_dir else None,
            secret_key=os.environ.get("PA_SECRET_KEY") or None,
            assistant_url=(_optional("ASSISTANT_URL") or "").rstrip("/") or None,
            outbound_url=_optional("PA_OUTBOUND_URL"),
            triggers_enabled=_flag("PA_TRIGGERS_ENABLED", True),
            mail_enabled=_flag("PA_MAIL_ENABLED", False),
        )

    def require(self, *names: str) -> None:
        """Raise ConfigError naming every missing variable in ``names``."""
        attrs = {
            "DATABASE_URL": self.database_url,
            "PA_DATA_DIR": self.data_dir,
            "PA_SECRET_KEY": self.secret_key,
            "ASSISTANT_URL": self.assistant_url,
        }
        missing = [n for n in names if not attrs[n]]
        if missing:
            raise ConfigError("missing required environment variable(s): " + ", ".join(missing))
