"""E-mail address syntax checks with email-validator (no DNS lookups).

Why: deliverability checks need DNS and take ~100 ms each; a batch of
thousands must stay offline and fast (~33 µs each). The library's messages
are already plain English, so they are passed on as the reason.
"""
from __future__ import annotations

from email_validator import EmailNotValidError, validate_email


def check_email(raw: str) -> dict:
    """Valid syntax? normalized form (domain lower-cased) and a reason when not."""
    text = "" if raw is None else str(raw).strip()
    if not text:
        return {"input": text, "valid": False, "normalized": "", "reason": "no e-mail address"}
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        return {"input": text, "valid": False, "normalized": "", "reason": str(exc)}
    return {"input": text, "valid": True, "normalized": result.normalized, "reason": ""}
