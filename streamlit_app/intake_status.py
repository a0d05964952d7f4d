"""The queue intake as plain data for the Performance page: connected or not, depth, rates, dead letters.

Why a module of its own: the page only lays the figures out; everything here is
plain values (no streamlit), read from the intake running in this server, or,
when it does not run here, from the settings and the store.
"""
from __future__ import annotations

import datetime
from typing import Any

from utils.intake import CACHE_NAMESPACE, DEAD_LETTER_SUFFIX, running_intake, start_intake
from utils.redact import redact, url_password
from utils.services import Services


def intake_status(services: Services) -> dict[str, Any]:
    """Everything the panel shows; `enabled` False means RABBITMQ_URL is not set."""
    settings = services.settings
    if not settings.rabbitmq_url:
        return {"enabled": False, "running": False, "state": "off",
                "words": "Off: RABBITMQ_URL is not set, so no jobs come from a queue.",
                "queue": settings.voice_processing_queue, "dead_letters": [], "gaps": []}
    intake = running_intake() or start_intake(settings, services.manager, services.store)
    if intake is None:
        return {"enabled": True, "running": False, "state": "stopped",
                "words": "Not running in this server.", "queue": settings.voice_processing_queue,
                "dead_letters": _stored_dead_letters(services), "gaps": []}
    snap = intake.snapshot()
    return {
        "enabled": True,
        "running": snap.state in ("connecting", "connected", "reconnecting", "stopping"),
        "state": snap.state,
        "words": _hide_url(services, snap.words),
        "queue": snap.queue,
        "dead_letter_queue": snap.dead_letter_queue,
        "depth": snap.depth,
        "dead_letter_depth": snap.dead_letter_depth,
        "consumers": snap.consumers,
        "prefetch": snap.prefetch,
        "in_flight": snap.in_flight,
        "pool": snap.pool,
        "workers": snap.workers,
        "acked_per_s": round(snap.acked_per_s, 1),
        "requeued_per_s": round(snap.requeued_per_s, 1),
        "dead_lettered_per_s": round(snap.dead_lettered_per_s, 1),
        "totals": snap.totals,
        "gaps": [{**_gap_row(gap), "reason": _hide_url(services, gap.get("reason", ""))} for gap in snap.gaps][::-1],
        "dead_letters": [_dead_letter_row(services, entry) for entry in snap.dead_letters],
        "last_error": _hide_url(services, snap.last_error),
    }


def _hide_url(services: Services, text: object) -> str:
    """Broker errors never show the broker's URL or password."""
    out = str(text or "")
    url = services.settings.rabbitmq_url
    for secret in (url, url_password(url)):
        if secret:
            out = out.replace(secret, "[hidden]")
    return redact(out)


def _stored_dead_letters(services: Services) -> list[dict]:
    key = f"dead-letters:{services.settings.voice_processing_queue}"
    try:
        entries = services.store.cache_get(CACHE_NAMESPACE, key) or []
    except Exception:  # noqa: BLE001 - the panel shows what it can
        entries = []
    return [_dead_letter_row(services, entry) for entry in reversed(entries)]


def _clock(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return datetime.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def _gap_row(gap: dict) -> dict:
    end = gap.get("end")
    seconds = (end if end is not None else datetime.datetime.now().timestamp()) - gap["start"]
    return {"from": _clock(gap["start"]), "to": _clock(end) if end is not None else "still disconnected",
            "seconds": round(seconds, 1), "reason": str(gap.get("reason", ""))}


def _dead_letter_row(services: Services, entry: dict) -> dict:
    """A producer's message can quote anything (a URL with a password, a key): its reason is masked."""
    return {"when": _clock(entry.get("at")), "job": str(entry.get("job_id", "")),
            "message": str(entry.get("message_id", "")), "reason": _hide_url(services, entry.get("reason", ""))}


__all__ = ["DEAD_LETTER_SUFFIX", "intake_status"]
