"""Geocoding through the real googlemaps client, with Spindle owning rate limits and retries.

Why: googlemaps' own limiter is per client and not thread-safe, and its own
retries (OVER_QUERY_LIMIT, HTTP 500/503/504) send requests the shared limiter
never sees. So `make_client` switches both off: its limiter is set far above
any real rate, OVER_QUERY_LIMIT is raised instead of retried, and a
requests response hook turns every 5xx into an error before googlemaps can
retry it. `geocode_address` then retries with backoff, taking a limiter slot
for every attempt, so the configured rate holds across all threads.

Caching is the caller's job (the store): key it with `cache_key(address)`.
"""
from __future__ import annotations

import random
import re
import time

import googlemaps
import requests
from googlemaps import exceptions as gm_errors

from utils.rate_limiter import RateLimiter
from utils.redact import redact

_UNLIMITED_QPS = 1_000_000  # googlemaps requires ints; this disables its sleeping
_RETRY_API_STATUSES = {"OVER_QUERY_LIMIT", "UNKNOWN_ERROR"}


class ServerError(Exception):
    """A 5xx answer, raised inside requests so googlemaps does not retry it on its own."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"server error HTTP {status_code}")
        self.status_code = status_code


def _raise_on_5xx(response: requests.Response, *_args, **_kwargs) -> requests.Response:
    if response.status_code >= 500:
        raise ServerError(response.status_code)
    return response


def make_client(api_key: str, base_url: str | None = None, timeout: float = 5.0) -> googlemaps.Client:
    """A googlemaps.Client with a timeout and with its own rate limiting and retries switched off."""
    key = (api_key or "").strip()
    if not key:
        raise ValueError("no Google Maps API key: set GOOGLE_MAPS_API_KEY to geocode")
    if not key.startswith("AIza"):
        raise ValueError("the Google Maps API key looks wrong: Google keys start with 'AIza'")
    if not timeout or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    session = requests.Session()
    session.hooks["response"].append(_raise_on_5xx)
    kwargs = {}
    if base_url:
        kwargs["base_url"] = base_url.rstrip("/")
    return googlemaps.Client(
        key=key,
        timeout=timeout,
        retry_timeout=max(60, int(timeout * 4)),  # only ever checked before the first attempt
        queries_per_second=_UNLIMITED_QPS,
        queries_per_minute=_UNLIMITED_QPS * 60,
        retry_over_query_limit=False,
        requests_session=session,
        **kwargs,
    )


def cache_key(address: str) -> str:
    """Case, punctuation and spacing do not change where an address is: '12 Main St.' == '12 MAIN ST'."""
    text = str(address or "").casefold()
    text = re.sub(r"[^\w#]+", " ", text)
    return " ".join(text.split())


def _result(address: str, status: str, reason: str = "", attempts: int = 0, **found) -> dict:
    out = {
        "address": address, "status": status, "reason": reason, "formatted_address": "",
        "lat": None, "lng": None, "location_type": "", "partial_match": False, "attempts": attempts,
    }
    out.update(found)
    return out


def _classify(exc: Exception) -> tuple[bool, str]:
    """(retry?, plain reason) for everything googlemaps and requests raise."""
    if isinstance(exc, gm_errors.Timeout):
        return True, "the geocoding service did not answer in time"
    if isinstance(exc, gm_errors.ApiError):
        if exc.status in _RETRY_API_STATUSES:
            return True, f"the geocoding service said {exc.status}" + (f" ({exc.message})" if exc.message else "")
        detail = f" ({exc.message})" if exc.message else ""
        return False, _mask_key(f"the geocoding service refused the request: {exc.status}{detail}")
    if isinstance(exc, gm_errors.HTTPError):  # non-200, non-5xx: our request is wrong
        return exc.status_code >= 500 or exc.status_code == 429, f"the geocoding service answered HTTP {exc.status_code}"
    if isinstance(exc, gm_errors.TransportError):
        base = exc.base_exception
        if isinstance(base, ServerError):
            return True, f"the geocoding service had a server error (HTTP {base.status_code})"
        return True, f"could not reach the geocoding service ({type(base).__name__})"
    return False, _mask_key(f"{type(exc).__name__}: {exc}")


def _mask_key(text: str) -> str:
    """Reasons end up in tables and exports: never show the API key (nor any other secret)."""
    return redact(text)


def geocode_address(
    address: str,
    client: googlemaps.Client,
    limiter: RateLimiter,
    retries: int = 4,
    backoff_s: float = 0.5,
) -> dict:
    """Geocode one address: status ok / not_found / failed (with reason); retries transient errors."""
    text = " ".join(str(address or "").split())
    if not text:
        return _result(text, "failed", "no address to geocode")
    reason = ""
    for attempt in range(retries + 1):
        limiter.acquire()
        try:
            results = client.geocode(text)
        except Exception as exc:  # classified below; unknown kinds are not retried
            retry, reason = _classify(exc)
            reason = _mask_key(reason)  # every branch: a message may quote the request URL with its key
            if not retry or attempt == retries:
                break
            time.sleep(backoff_s * (2 ** attempt) * (0.5 + random.random()))
            continue
        if not results:
            return _result(text, "not_found", "no place matches this address", attempts=attempt + 1)
        best = results[0]
        geometry = best.get("geometry", {})
        location = geometry.get("location", {})
        return _result(
            text, "ok", attempts=attempt + 1,
            formatted_address=best.get("formatted_address", ""),
            lat=location.get("lat"), lng=location.get("lng"),
            location_type=geometry.get("location_type", ""),
            partial_match=bool(best.get("partial_match", False)),
        )
    return _result(text, "failed", reason, attempts=attempt + 1)
