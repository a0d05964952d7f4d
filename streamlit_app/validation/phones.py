"""Phone number checks with phonenumbers (Google's libphonenumber port).

Why: a number that merely has ten digits may still be impossible (too short,
unknown country code) or unassigned; users need the reason in plain words and
a canonical E.164 form for matching and export. phonenumbers is pure Python
and holds the GIL: run big batches in processes. Its carrier and geocoder
data cost ~100 MB a process, so they load only when details are asked for.
"""
from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType, ValidationResult

_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: "unknown or missing country code",
    NumberParseException.NOT_A_NUMBER: "not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short after the international prefix",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}
_POSSIBLE_REASONS = {
    ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
    ValidationResult.TOO_SHORT: "too short",
    ValidationResult.TOO_LONG: "too long",
    ValidationResult.INVALID_LENGTH: "wrong number of digits",
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "a local number without its area code",
}
_TYPE_NAMES = {
    PhoneNumberType.FIXED_LINE: "fixed_line",
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile",
    PhoneNumberType.TOLL_FREE: "toll_free",
    PhoneNumberType.PREMIUM_RATE: "premium_rate",
    PhoneNumberType.SHARED_COST: "shared_cost",
    PhoneNumberType.VOIP: "voip",
    PhoneNumberType.PERSONAL_NUMBER: "personal_number",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.UAN: "uan",
    PhoneNumberType.VOICEMAIL: "voicemail",
    PhoneNumberType.UNKNOWN: "unknown",
}


def _result(raw: str, **fields) -> dict:
    base = {
        "input": raw, "valid": False, "possible": False, "type": "", "region": "",
        "e164": "", "international": "", "national": "", "extension": "", "reason": "",
    }
    base.update(fields)
    return base


def check_phone(raw: str, default_region: str = "US", with_details: bool = False) -> dict:
    """Is this a real, dialable number? valid/possible/type/region/E.164 and a reason when not."""
    text = "" if raw is None else str(raw).strip()
    if not text:
        return _result(text, reason="no phone number")
    region = (default_region or "").upper() or None
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        reason = _PARSE_REASONS.get(exc.error_type, str(exc))
        if exc.error_type == NumberParseException.INVALID_COUNTRY_CODE and not text.startswith("+"):
            reason = f"no country code, and default region {default_region!r} is not a known region"
        return _result(text, reason=reason)
    possible = phonenumbers.is_possible_number_with_reason(number)
    valid = possible == ValidationResult.IS_POSSIBLE and phonenumbers.is_valid_number(number)
    number_region = phonenumbers.region_code_for_number(number) or ""
    result = _result(
        text,
        valid=valid,
        possible=possible == ValidationResult.IS_POSSIBLE,
        region=number_region,
        extension=number.extension or "",
    )
    if possible != ValidationResult.IS_POSSIBLE:
        result["reason"] = _POSSIBLE_REASONS.get(possible, "not a possible number")
        return result
    if not valid:
        where = number_region or f"country code +{number.country_code}"
        result["reason"] = f"not an assigned number in {where} (the area code or exchange does not exist)"
        return result
    result.update(
        type=_TYPE_NAMES.get(phonenumbers.number_type(number), "unknown"),
        e164=phonenumbers.format_number(number, PhoneNumberFormat.E164),
        international=phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL),
        national=phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL),
    )
    if with_details:
        result.update(phone_details(number))
    return result


def phone_details(number: phonenumbers.PhoneNumber) -> dict:
    """Carrier, place and time zones; imported here so only callers who ask pay ~100 MB."""
    from phonenumbers import carrier, geocoder, timezone

    return {
        "carrier": carrier.name_for_number(number, "en") or "",
        "location": geocoder.description_for_number(number, "en") or "",
        "time_zones": ", ".join(tz for tz in timezone.time_zones_for_number(number) if tz != "Etc/Unknown"),
    }


def digits_only(raw: str) -> str:
    """The digits of a phone number as typed (for blocking and comparison)."""
    return "".join(ch for ch in str(raw) if ch.isdigit())
