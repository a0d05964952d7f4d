"""Take passwords and keys out of text before anyone sees it: pages, tables, exports and the server log.

Why one place: a connection string reaches an error message in many ways (psycopg quotes
a malformed URL whole, a client library repeats its request URL with `key=`), so every
error path runs through `redact`, and the log gets a filter that does the same.
"""
from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

MASK = "***"
MIN_SECRET_LEN = 4  # shorter "secrets" would blank out ordinary words

# user:password@ in any URL (postgresql://bob:pw@host, https://u:p@host)
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s\"']*:)(?P<secret>[^@\s\"']*)(?P<tail>@)", re.I)
# key=value pairs in libpq conninfo and settings (password=…, secret=…, apikey=…), and in URL query strings
# (?key=…, &token=…): a bare `key=` elsewhere is ordinary code in a traceback (st.button(key="start")).
_KEY_VALUE = re.compile(r"(?P<head>(?:\b(?:password|passwd|pwd|secret|client_secret|cookie_secret|api[_-]?key|apikey|"
                        r"access_token|refresh_token)|[?&](?:key|token|sig|signature))\s*=\s*['\"]?)"
                        r"(?P<secret>[^\s&'\",;)]+)", re.I)
# Google API keys and JSON Web Tokens (Supabase keys are JWTs) wherever they appear
_GOOGLE_KEY = re.compile(r"AIza[0-9A-Za-z_\-]{10,}")
_JWT = re.compile(r"\beyJ[0-9A-Za-z_\-]{8,}\.[0-9A-Za-z_\-]{8,}\.[0-9A-Za-z_\-]{8,}")

_known_lock = threading.Lock()  # guards _known
_known: set[str] = set()  # secret values this process was configured with (passwords, keys, tokens)


def add_secrets(values: Iterable[str]) -> None:
    """Remember configured secret values so they are masked even where no pattern would spot them."""
    found = set()
    for value in values:
        text = str(value or "")
        for candidate in (text, unquote(text)):
            if len(candidate) >= MIN_SECRET_LEN:
                found.add(candidate)
    with _known_lock:
        _known.update(found)


_CONFIGURED_URL = re.compile(r"^\s*[a-z][a-z0-9+.-]*://[^:/@]*:(?P<secret>.*)@[^@]*$", re.I | re.S)


def url_password(url: str) -> str:
    """The password part of a configured connection URL, found even when it is malformed (spaces, a bad host)."""
    match = _CONFIGURED_URL.match(url or "")
    return match.group("secret") if match else ""


def settings_secrets(settings: Any) -> list[str]:
    """Every secret a Settings object holds: the database and broker URLs and their passwords, keys, tokens."""
    database_url = getattr(settings, "database_url", "") or ""
    broker_url = getattr(settings, "rabbitmq_url", "") or ""
    extra = getattr(settings, "extra", {}) or {}
    values = [database_url, url_password(database_url), broker_url, url_password(broker_url),
              getattr(settings, "supabase_key", ""),
              getattr(settings, "google_maps_api_key", ""), getattr(settings, "admin_token", ""),
              extra.get("AUTH_CLIENT_SECRET", ""), extra.get("AUTH_COOKIE_SECRET", "")]
    return [v for v in values if v]


def redact(text: object) -> str:
    """The text with passwords, keys and tokens replaced by ***."""
    out = str(text)
    with _known_lock:
        known = sorted(_known, key=len, reverse=True)  # the whole URL before its password
    for value in known:
        if value in out:
            out = out.replace(value, MASK)
    out = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK + m.group("tail"), out)
    out = _KEY_VALUE.sub(lambda m: m.group("head") + MASK, out)
    out = _GOOGLE_KEY.sub(MASK, out)
    return _JWT.sub(MASK, out)


class RedactingFilter(logging.Filter):
    """A log filter that formats the message and traceback itself and masks them, so no handler sees a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not lose the record
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(text)
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FILTER = RedactingFilter()


def install_log_redaction() -> None:
    """Add the filter to every handler there is: the root's and each of Streamlit's per-module loggers'.

    Safe to call again (loggers created since then are covered on the next call)."""
    loggers = [logging.getLogger()] + [logger for logger in list(logging.Logger.manager.loggerDict.values())
                                       if isinstance(logger, logging.Logger)]
    for logger in loggers:
        for handler in list(logger.handlers):
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
