"""Outcome notifications: JSON events POSTed to the manifest's ``notifications`` URLs.

``format: json`` sends the event itself; ``format: slack`` sends ``{"text": ..., "attachments"}``
(what a Slack incoming webhook accepts) with the event under ``upgrade_infra``. Each receiver gets
its own short timeout and errors are only recorded: a failing or hanging receiver never blocks or
fails an upgrade or a rollback. Event names: ``upgrade``, ``upgrade.failed``, ``rollback``,
``rollback.auto``, ``rollback.failed``; a receiver's ``events`` list matches a name or its prefix.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx

from upgrade_infra.core.redact import scrub
from upgrade_infra.stack.manifest import Manifest, NotificationSpec

ICON = {"succeeded": ":white_check_mark:", "rolled-back": ":leftwards_arrow_with_hook:",
        "failed": ":rotating_light:", "recovered": ":wrench:"}


def event(name: str, env: str, **fields: Any) -> dict[str, Any]:
    return {"event": name, "environment": env, "at": time.time(), "host": socket.gethostname(),
            "source": "upgrade-infra", **fields}


def wants(spec: NotificationSpec, name: str) -> bool:
    return any(name == e or name.startswith(e + ".") for e in spec.events)


def summary_line(ev: dict[str, Any]) -> str:
    outcome = ev.get("outcome", "")
    parts = [ICON.get(outcome, ":information_source:"), f"*{ev['event']}* of `{ev['environment']}`"]
    if outcome:
        parts.append(f"{outcome}")
    if ev.get("from_versions") or ev.get("to_versions"):
        parts.append(f"{_v(ev.get('from_versions'))} → {_v(ev.get('to_versions'))}")
    if ev.get("total_s") is not None:
        parts.append(f"in {ev['total_s']:.1f}s")
    if ev.get("error"):
        parts.append(f"— {ev['error']}")
    return " ".join(parts)


def _v(versions: dict | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in (versions or {}).items()) or "-"


def payload(spec: NotificationSpec, ev: dict[str, Any]) -> dict[str, Any]:
    if spec.format == "slack":
        fields = [{"title": k, "value": str(ev[k]), "short": True}
                  for k in ("operation", "outcome", "total_s", "restore_point") if ev.get(k) is not None]
        return {"text": summary_line(ev), "attachments": [{"fields": fields}], "upgrade_infra": ev}
    return ev


def send(manifest: Manifest, ev: dict[str, Any]) -> list[dict[str, Any]]:
    """Deliver ``ev`` to every interested receiver; returns one delivery record per receiver."""
    out = []
    for spec in manifest.notifications:
        if not wants(spec, ev["event"]):
            continue
        t0 = time.monotonic()
        body = payload(spec, ev)
        try:
            import json

            r = httpx.post(spec.url, content=scrub(json.dumps(body, default=str)),
                           headers={"content-type": "application/json"}, timeout=spec.timeout_s)
            ok, detail = r.is_success, f"HTTP {r.status_code}"
        except Exception as e:  # noqa: BLE001 - a receiver must never break the operation
            ok, detail = False, f"{type(e).__name__}: {str(e)[:200]}"
        out.append({"url": scrub(spec.url), "ok": ok, "detail": detail,
                    "seconds": round(time.monotonic() - t0, 3)})
    return out
