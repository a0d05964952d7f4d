"""E-mail syntax checks (offline): normalized form and the library's plain-English reason."""
from __future__ import annotations

import pytest

from streamlit_app.validation.emails import check_email


@pytest.mark.parametrize("raw, normalized", [
    ("jane.doe@gmail.com", "jane.doe@gmail.com"),
    ("Jane.Doe@GMAIL.COM", "Jane.Doe@gmail.com"),  # domain lower-cased, local part kept
    ("  bob@example.org ", "bob@example.org"),
    ("zoë@exämple.de", "zoë@exämple.de"),
])
def test_valid_addresses_are_normalized(raw, normalized):
    result = check_email(raw)
    assert result == {"input": raw.strip(), "valid": True, "normalized": normalized, "reason": ""}


@pytest.mark.parametrize("raw, reason", [
    ("", "no e-mail address"),
    ("jane.doe@", "something after the @-sign"),
    ("bob at gmail.com", "must have an @-sign"),
    ("mary..smith@gmail.com", "two periods in a row"),
    ("kim@gmail", "should have a period"),
    ("tom@@yahoo.com", "@"),
    ("a b@c.com", "invalid characters"),
])
def test_invalid_addresses_say_why(raw, reason):
    result = check_email(raw)
    assert result["valid"] is False and result["normalized"] == ""
    assert reason in result["reason"]


def test_no_network_lookups(monkeypatch):
    import socket

    def refuse(*_args, **_kwargs):
        raise AssertionError("check_email must not use the network")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    assert check_email("someone@a-domain-that-does-not-exist-spindle.com")["valid"]
