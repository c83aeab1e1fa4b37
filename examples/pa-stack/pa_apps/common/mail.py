"""'Sending mail': append one JSON line to PA_DATA_DIR/outbox.log when enabled."""
from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime

from pa_apps.common.settings import Settings

log = logging.getLogger("pa_apps.mail")
_lock = threading.Lock()


def send_mail(settings: Settings, to: str, subject: str, body: str = "") -> bool:
    if not settings.mail_enabled:
        return False
    if settings.data_dir is None:
        log.warning("PA_MAIL_ENABLED is set but PA_DATA_DIR is not; mail to %s dropped", to)
        return False
    line = json.dumps({
        "at": datetime.now(UTC).isoformat(),
        "to": to,
        "subject": subject,
        "body": body,
    })
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with _lock, open(settings.data_dir / "outbox.log", "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
    return True
