"""The per-record check a worker runs: phone, e-mail and offline address in one flat result.

Why: the threading manager maps one top-level, picklable function over the
records; a flat dict per record turns straight into a results table row.
Errors inside one record become that record's problems, never the batch's.
"""
from __future__ import annotations

from streamlit_app.validation.addresses import check_address
from streamlit_app.validation.emails import check_email
from streamlit_app.validation.phones import check_phone

DEFAULT_FIELDS = ("phone", "email", "address")
_LABELS = {"phone": "phone", "email": "e-mail", "address": "address"}


def validate_record(record: dict, options: dict | None = None) -> dict:
    """Check one record; options: default_region ('US'), phone_details (False), fields (phone, email, address)."""
    options = options or {}
    fields = tuple(options.get("fields") or DEFAULT_FIELDS)
    unknown = set(fields) - set(DEFAULT_FIELDS)
    if unknown:
        raise ValueError(f"unknown fields to check: {sorted(unknown)} (known: {', '.join(DEFAULT_FIELDS)})")
    out: dict = {"row": record.get("row")}
    problems: list[str] = []
    for field in fields:
        try:
            result = _CHECKS[field](record, options)
        except Exception as exc:  # one odd value must not sink the batch
            result = {f"{field}_status": "error", f"{field}_reason": f"{type(exc).__name__}: {exc}"}
        out.update(result)
        if result[f"{field}_status"] not in ("valid", "complete", "not_checked"):
            problems.append(f"{_LABELS[field]}: {result[f'{field}_reason']}")
    out["status"] = "invalid" if problems else "valid"
    out["problems"] = problems
    return out


def _phone(record: dict, options: dict) -> dict:
    raw = str(record.get("phone") or "").strip()
    if not raw:
        return {"phone_status": "missing", "phone_reason": "no phone number", "phone_e164": "", "phone_type": "", "phone_region": ""}
    details = bool(options.get("phone_details", False))
    result = check_phone(raw, options.get("default_region") or "US", with_details=details)
    out = {
        "phone_status": "valid" if result["valid"] else "invalid",
        "phone_reason": result["reason"],
        "phone_e164": result["e164"],
        "phone_type": result["type"],
        "phone_region": result["region"],
    }
    if details:
        out["phone_carrier"] = result.get("carrier", "")
        out["phone_location"] = result.get("location", "")
    return out


def _email(record: dict, _options: dict) -> dict:
    raw = str(record.get("email") or "").strip()
    if not raw:
        return {"email_status": "missing", "email_reason": "no e-mail address", "email_normalized": ""}
    result = check_email(raw)
    return {
        "email_status": "valid" if result["valid"] else "invalid",
        "email_reason": result["reason"],
        "email_normalized": result["normalized"],
    }


def _address(record: dict, _options: dict) -> dict:
    if not any(str(record.get(key) or "").strip() for key in ("address", "street", "city", "state", "zip")):
        return {"address_status": "missing", "address_reason": "no address", "address_normalized": ""}
    result = check_address(record)
    return {
        "address_status": result["status"],
        "address_reason": result["reason"],
        "address_normalized": result["normalized"],
    }


_CHECKS = {"phone": _phone, "email": _email, "address": _address}
