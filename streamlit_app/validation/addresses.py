"""Offline US postal address checks: parse, USPS-normalise, and check the ZIP against city/state.

Why: geocoding costs money and needs the network; most bad addresses in a
sheet are visibly bad (no house number, no ZIP, a ZIP from another state) and
can be caught offline in ~0.5 ms: usaddress parses, usaddress-scourgify
normalises to USPS Pub. 28 style, and zipcodes' bundled database knows which
city and state each ZIP belongs to.

Verdicts (`status`): complete, incomplete (reason "missing X"), unparseable,
mismatch (reason e.g. "ZIP 10001 is in NY, not CA"), not_checked (non-US).
"""
from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from types import MappingProxyType

import usaddress
from scourgify import normalize_address_record
from scourgify.exceptions import AddressNormalizationError

_US_NAMES = {"", "us", "usa", "unitedstates", "unitedstatesofamerica", "america"}
_ZIP_RE = re.compile(r"^(\d{5})(?:-?(\d{4}))?$")
_STATE_NAMES = {
    "alabama": "AL", "alaska": "AK", "arizona": "AZ", "arkansas": "AR", "california": "CA",
    "colorado": "CO", "connecticut": "CT", "delaware": "DE", "districtofcolumbia": "DC",
    "florida": "FL", "georgia": "GA", "hawaii": "HI", "idaho": "ID", "illinois": "IL",
    "indiana": "IN", "iowa": "IA", "kansas": "KS", "kentucky": "KY", "louisiana": "LA",
    "maine": "ME", "maryland": "MD", "massachusetts": "MA", "michigan": "MI", "minnesota": "MN",
    "mississippi": "MS", "missouri": "MO", "montana": "MT", "nebraska": "NE", "nevada": "NV",
    "newhampshire": "NH", "newjersey": "NJ", "newmexico": "NM", "newyork": "NY",
    "northcarolina": "NC", "northdakota": "ND", "ohio": "OH", "oklahoma": "OK", "oregon": "OR",
    "pennsylvania": "PA", "rhodeisland": "RI", "southcarolina": "SC", "southdakota": "SD",
    "tennessee": "TN", "texas": "TX", "utah": "UT", "vermont": "VT", "virginia": "VA",
    "washington": "WA", "westvirginia": "WV", "wisconsin": "WI", "wyoming": "WY",
    "puertorico": "PR", "guam": "GU", "virginislands": "VI",
}


@functools.lru_cache(maxsize=1)
def zip_index() -> Mapping[str, tuple[str, str, tuple[str, ...]]]:
    """ZIP → (city, state, every name USPS knows for it); built once per process, read-only."""
    import zipcodes

    return MappingProxyType({
        entry["zip_code"]: (
            entry["city"],
            entry["state"],
            (entry["city"], *entry.get("acceptable_cities", ()), *entry.get("unacceptable_cities", ())),
        )
        for entry in zipcodes.list_all()
    })


def _city_key(city: str) -> str:
    """'St. Louis' and 'SAINT LOUIS' compare equal."""
    key = re.sub(r"[^a-z]", "", city.lower().replace("saint", "st").replace("fort", "ft").replace("mount", "mt"))
    return key


def _state_code(state: str) -> str:
    text = state.strip()
    if len(text) == 2:
        return text.upper()
    return _STATE_NAMES.get(re.sub(r"[^a-z]", "", text.lower()), text.upper())


def _parts_from(record_or_parts: Mapping | str) -> dict[str, str]:
    """Accept a full line, or a record with street/address + city/state/zip/country."""
    if isinstance(record_or_parts, str):
        return {"line": record_or_parts.strip(), "city": "", "state": "", "zip": "", "country": ""}
    get = lambda key: str(record_or_parts.get(key) or "").strip()  # noqa: E731
    street = get("street") or get("address")
    return {"line": street, "city": get("city"), "state": get("state"), "zip": get("zip"), "country": get("country")}


def _result(status: str, reason: str = "", normalized: str = "", **parts) -> dict:
    out = {
        "status": status, "valid": status == "complete", "reason": reason, "normalized": normalized,
        "street": "", "unit": "", "city": "", "state": "", "zip": "", "po_box": False,
    }
    out.update(parts)
    return out


def check_address(record_or_parts: Mapping | str) -> dict:
    """Verdict on a US postal address: status, plain reason, single-line normalized form and parts."""
    parts = _parts_from(record_or_parts)
    country = re.sub(r"[^a-z]", "", parts["country"].lower())
    if country not in _US_NAMES:
        return _result("not_checked", f"offline checks cover US addresses only (country is {parts['country']})")
    line = parts["line"]
    if not any((line, parts["city"], parts["state"], parts["zip"])):
        return _result("incomplete", "missing the whole address")
    full = ", ".join(p for p in (line, parts["city"], f"{parts['state']} {parts['zip']}".strip()) if p)
    try:
        tagged, kind = usaddress.tag(full)
    except usaddress.RepeatedLabelError as exc:
        return _result("unparseable", "cannot tell the parts of this address apart"
                                      + _repeated_part(getattr(exc, "parsed_string", None) or []))
    if tagged.get("Recipient"):
        return _result("unparseable", f"a name ({tagged['Recipient']}) is mixed into the address; keep it in its own column")
    city = tagged.get("PlaceName", "") or parts["city"]
    city_as_typed = city
    state = _state_code(tagged.get("StateName", "") or parts["state"])
    zip_text = (tagged.get("ZipCode", "") or parts["zip"]).replace(" ", "")
    if zip_text.isdigit() and len(zip_text) == 4:  # Excel drops the leading zero of 02139
        zip_text = zip_text.zfill(5)
    po_box = kind == "PO Box" or "USPSBoxID" in tagged
    if po_box:
        street, unit = _po_box_line(tagged), ""
    elif kind == "Street Address" and tagged.get("StreetName"):
        try:
            normal = normalize_address_record(full)
            street, unit = normal["address_line_1"] or "", normal["address_line_2"] or ""
            city = normal["city"] or city
            state = normal["state"] or state
        except AddressNormalizationError as exc:
            return _result("unparseable", _scourgify_reason(exc))
    else:
        street, unit = "", ""
        if kind not in ("Street Address", "Intersection") and not _has_number(tagged):
            if not (city or zip_text):
                return _result("unparseable", "this does not read as a postal address")
    checks = [("box number", street)] if po_box else [
        ("house number", tagged.get("AddressNumber", "")), ("street", tagged.get("StreetName", ""))]
    checks += [("city", city), ("state", state), ("ZIP code", zip_text)]
    missing = [label for label, value in checks if not value]
    zip_match = _ZIP_RE.match(zip_text)
    zip5 = zip_match.group(1) if zip_match else zip_text
    fields = dict(street=street.upper(), unit=unit.upper(), city=city.upper(), state=state.upper(), zip=zip5, po_box=po_box)
    normalized = _one_line(fields)
    if missing:
        return _result("incomplete", "missing " + _join(missing), normalized, **fields)
    if not zip_match:
        return _result("mismatch", f"ZIP {zip_text} is not a 5-digit US ZIP code", normalized, **fields)
    known = zip_index().get(zip5)
    if known is None:
        return _result("mismatch", f"ZIP {zip5} is not a known US ZIP code", normalized, **fields)
    known_city, known_state, known_names = known
    if state.upper() != known_state:
        return _result("mismatch", f"ZIP {zip5} is in {known_state}, not {state.upper()}", normalized, **fields)
    if _city_key(city) not in {_city_key(name) for name in known_names}:
        return _result("mismatch", f"ZIP {zip5} is {known_city}, {known_state}, not {city_as_typed}", normalized, **fields)
    reason = "PO box" if po_box else ""
    return _result("complete", reason, normalized, **fields)


# usaddress's labels, as a person reads them (for "two values for ...")
_PART_WORDS = {"AddressNumber": "the house number", "StreetName": "the street name", "PlaceName": "the city",
               "StateName": "the state", "ZipCode": "the ZIP code", "OccupancyIdentifier": "the unit number",
               "USPSBoxID": "the box number"}


def _repeated_part(tokens: list[tuple[str, str]]) -> str:
    """" (two values for the house number)" when one part of the address shows up in two places, else ""."""
    seen: set[str] = set()
    previous = None
    for _, label in tokens:
        if label != previous and label in seen:
            return f" (two values for {_PART_WORDS.get(label, label)})"
        seen.add(label)
        previous = label
    return ""


def _has_number(tagged: Mapping[str, str]) -> bool:
    return bool(tagged.get("AddressNumber") or tagged.get("USPSBoxID"))


def _po_box_line(tagged: Mapping[str, str]) -> str:
    """scourgify refuses PO boxes; USPS form is simply 'PO BOX 123'."""
    box_id = tagged.get("USPSBoxID", "")
    return f"PO BOX {box_id}".strip() if box_id else ""


def _scourgify_reason(exc: AddressNormalizationError) -> str:
    title = (exc.title or "").lower()
    if "ambiguous" in title:
        return "parts of this address are ambiguous (e.g. a name or two street lines mixed in)"
    if "incomplete" in title:
        return "missing city, state or ZIP code"
    return "cannot break this address into street, city, state and ZIP"


def _one_line(fields: Mapping[str, object]) -> str:
    """'123 MAIN ST APT 4, SPRINGFIELD, IL 62701' with empty parts left out."""
    street = " ".join(str(p) for p in (fields["street"], fields["unit"]) if p)
    tail = " ".join(str(p) for p in (fields["state"], fields["zip"]) if p)
    return ", ".join(p for p in (street, str(fields["city"]), tail) if p)


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
