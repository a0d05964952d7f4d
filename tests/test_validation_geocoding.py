"""Geocoding with the real googlemaps client against a local fake of the Geocoding API."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import googlemaps
import pytest

from streamlit_app.validation.geocoding import cache_key, geocode_address, make_client
from tests.fixtures.geocode_server import TEST_API_KEY, ServerConfig, geocode_server  # noqa: F401 (fixture)
from utils.rate_limiter import RateLimiter

KNOWN = "350 Fifth Avenue, New York, NY 10118"


def _client(server, timeout: float = 2.0):
    return make_client(TEST_API_KEY, base_url=server.base_url, timeout=timeout)


def test_known_address_is_found_with_coordinates(geocode_server):
    result = geocode_address(KNOWN, _client(geocode_server), RateLimiter(100))
    assert result["status"] == "ok"
    assert result["formatted_address"] == "350 5th Ave, New York, NY 10118, USA"
    assert result["lat"] == pytest.approx(40.7484) and result["lng"] == pytest.approx(-73.9857)
    assert result["location_type"] == "ROOFTOP" and result["partial_match"] is False
    assert result["attempts"] == 1


def test_unknown_address_is_not_found_not_failed(geocode_server):
    result = geocode_address("1 Nowhere Lane, Atlantis", _client(geocode_server), RateLimiter(100))
    assert result["status"] == "not_found"
    assert result["reason"]


def test_empty_address_fails_without_calling_the_api(geocode_server):
    result = geocode_address("   ", _client(geocode_server), RateLimiter(100))
    assert result["status"] == "failed" and "no address" in result["reason"]
    assert geocode_server.requests == []


def test_refused_key_fails_at_once_and_the_reason_does_not_show_the_key(geocode_server):
    geocode_server.config.required_key = "AIzaSomeOtherKey"
    result = geocode_address(KNOWN, _client(geocode_server), RateLimiter(100), retries=3)
    assert result["status"] == "failed"
    assert "REQUEST_DENIED" in result["reason"]
    assert TEST_API_KEY not in result["reason"]
    assert len(geocode_server.requests) == 1  # not retried: retrying cannot help


def test_over_query_limit_is_retried_by_spindle_not_by_googlemaps(geocode_server):
    geocode_server.config.over_limit_every = 2  # requests 2, 4, 6... are refused
    client, limiter = _client(geocode_server), RateLimiter(100)
    first = geocode_address(KNOWN, client, limiter, backoff_s=0.01)
    second = geocode_address(KNOWN, client, limiter, backoff_s=0.01)
    assert first["status"] == second["status"] == "ok"
    assert (first["attempts"], second["attempts"]) == (1, 2)
    assert [r.answer for r in geocode_server.requests] == ["OK", "OVER_QUERY_LIMIT", "OK"]
    assert limiter.stats()["acquired"] == 3  # every attempt went through the shared limiter


def test_server_errors_are_retried_then_reported(geocode_server):
    geocode_server.config.error_500_every = 1  # always HTTP 500
    result = geocode_address(KNOWN, _client(geocode_server), RateLimiter(100), retries=2, backoff_s=0.01)
    assert result["status"] == "failed"
    assert "HTTP 500" in result["reason"]
    assert len(geocode_server.requests) == 3  # 1 + 2 retries; googlemaps' own 5xx retries are off


def test_slow_answers_time_out_and_are_retried(geocode_server):
    geocode_server.config.slow_every = 2
    geocode_server.config.slow_seconds = 0.6
    client, limiter = _client(geocode_server, timeout=0.2), RateLimiter(100)
    geocode_address(KNOWN, client, limiter)  # request 1: fast
    result = geocode_address(KNOWN, client, limiter, backoff_s=0.01)  # request 2 slow, 3 fast
    assert result["status"] == "ok" and result["attempts"] == 2

    geocode_server.config.slow_every = 1
    failed = geocode_address(KNOWN, client, limiter, retries=1, backoff_s=0.01)
    assert failed["status"] == "failed" and "in time" in failed["reason"]


def test_unreachable_service_fails_with_a_reason():
    client = make_client(TEST_API_KEY, base_url="http://127.0.0.1:9", timeout=1)
    result = geocode_address(KNOWN, client, RateLimiter(100), retries=1, backoff_s=0.01)
    assert result["status"] == "failed"
    assert "could not reach" in result["reason"]
    assert TEST_API_KEY not in result["reason"]


def test_no_record_is_lost_under_over_limit_errors_and_slow_answers(geocode_server):
    geocode_server.reset(ServerConfig(answer_all=True, over_limit_every=6, error_500_every=9,
                                      slow_every=13, slow_seconds=0.5))
    client, limiter = _client(geocode_server, timeout=0.25), RateLimiter(100)
    addresses = [f"{n} Main St, Springfield, IL 62701" for n in range(1, 81)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda a: geocode_address(a, client, limiter, retries=10, backoff_s=0.01), addresses))

    assert [r["address"] for r in results] == addresses
    assert all(r["status"] == "ok" for r in results), [r for r in results if r["status"] != "ok"]
    answers = geocode_server.answers()
    assert answers.get("OVER_QUERY_LIMIT") and answers.get("HTTP500")  # the faults really happened
    assert sum(r["attempts"] for r in results) == len(geocode_server.requests)  # no hidden retries
    assert any(r["attempts"] > 1 for r in results)


def test_shared_limiter_holds_the_configured_rate_across_8_threads(geocode_server):
    geocode_server.reset(ServerConfig(answer_all=True, max_qps=60))
    client, limiter = _client(geocode_server), RateLimiter(50)
    addresses = [f"{n} Oak Ave, Madison, WI 53703" for n in range(150)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda a: geocode_address(a, client, limiter), addresses))

    assert all(r["status"] == "ok" for r in results)
    arrivals = geocode_server.arrival_times()
    achieved = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    assert achieved == pytest.approx(50, rel=0.05), f"server saw {achieved:.1f}/s for 50/s configured"
    assert geocode_server.answers() == {"OK": 150}  # never over the service's own limit


def test_make_client_switches_off_googlemaps_own_limits_and_retries():
    client = make_client(TEST_API_KEY, timeout=3)
    assert isinstance(client, googlemaps.Client)
    assert client.timeout == 3
    assert client.retry_over_query_limit is False
    assert client.queries_quota >= 1000  # its per-second sleeping never triggers


@pytest.mark.parametrize("key, message", [("", "no Google Maps API key"), ("abc123", "start with 'AIza'")])
def test_make_client_explains_a_bad_key(key, message):
    with pytest.raises(ValueError, match=message):
        make_client(key)


def test_cache_key_ignores_case_punctuation_and_spacing():
    assert cache_key("12 Main St.,  Springfield, IL") == cache_key("12 MAIN ST Springfield IL") == "12 main st springfield il"
    assert cache_key("Apt #4, 1 Elm") == "apt #4 1 elm"
    assert cache_key("12 Main St") != cache_key("13 Main St")


def test_limiter_is_shared_safely_by_threads_calling_geocode(geocode_server):
    client, limiter = _client(geocode_server), RateLimiter(200)
    errors = []

    def run():
        try:
            for _ in range(5):
                assert geocode_address(KNOWN, client, limiter)["status"] == "ok"
        except Exception as exc:  # collected: assertion errors in threads are otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert limiter.stats()["acquired"] == 40 == len(geocode_server.requests)
