"""Person records → normalised comparison fields and blocking keys (one array per field).

Why: record linkage compares like with like. 'Smith, Jane' and 'Jane Smith',
'(212) 736-5000' and '+1 212.736.5000', '350 Fifth Avenue' and '350 5th Ave'
must look the same before any similarity is measured, and a house number typed
into its own column must meet one typed at the start of the street line.
Every field is a numpy object array of str ('' = missing), in record order.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence

import jellyfish
import numpy as np
import pandas as pd

from streamlit_app.validation.records import guess_columns

Fields = dict[str, np.ndarray]

_STREET_WORDS = {
    "street": "st", "avenue": "ave", "av": "ave", "road": "rd", "drive": "dr", "lane": "ln", "court": "ct",
    "boulevard": "blvd", "place": "pl", "terrace": "ter", "highway": "hwy", "parkway": "pkwy", "circle": "cir",
    "square": "sq", "trail": "trl", "crescent": "cres", "circuit": "cct", "close": "cl", "north": "n",
    "south": "s", "east": "e", "west": "w", "northeast": "ne", "northwest": "nw", "southeast": "se",
    "southwest": "sw", "apartment": "apt", "unit": "apt", "suite": "ste", "number": "apt", "no": "apt",
    "first": "1st", "second": "2nd", "third": "3rd", "fourth": "4th", "fifth": "5th", "sixth": "6th",
    "seventh": "7th", "eighth": "8th", "ninth": "9th", "tenth": "10th",
}
_TITLES_AND_SUFFIXES = frozenset({"mr", "mrs", "ms", "miss", "dr", "prof", "jr", "sr", "ii", "iii", "iv"})
_NOT_LETTERS = re.compile(r"[^a-z]")
_NOT_LETTERS_OR_SPACE = re.compile(r"[^a-z ]")
_NOT_DIGITS = re.compile(r"\D")
_NOT_ALNUM = re.compile(r"[^a-z0-9]")
_SPACES = re.compile(r"\s")
_NOT_WORD = re.compile(r"[^a-z0-9 ]")
_ZIP_IN_TEXT = re.compile(r"\b(\d{5})(?:-\d{4})?\s*$")
_ISO_DATE = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})$")
_DAY_FIRST_OR_US_DATE = re.compile(r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{4}|\d{2})$")
_COMPACT_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")


def fold(text: object) -> str:
    """Accents, case and stray spaces do not make a different person."""
    text = "" if text is None or text != text else str(text)
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return text.lower().strip()


def letters(text: str) -> str:
    return _NOT_LETTERS.sub("", fold(text))


def split_full_name(full: str) -> tuple[str, str]:
    """'Smith, Jane' → jane / smith; 'Dr. Jane Q. Smith Jr.' → jane / smith; 'Smith' → '' / smith."""
    full = fold(full)
    if "," in full:
        surname, _, given = full.partition(",")
        full = f"{given} {surname}"
    tokens = [letters(t) for t in full.split()]
    tokens = [t for t in tokens if t and t not in _TITLES_AND_SUFFIXES]
    if not tokens:
        return "", ""
    return (tokens[0], tokens[-1]) if len(tokens) > 1 else ("", tokens[0])


def phone_digits(text: str) -> str:
    """Digits only, without a US leading 1; under 7 digits is not a usable phone."""
    digits = _NOT_DIGITS.sub("", str(text))
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    return digits if len(digits) >= 7 else ""


def email_address(text: str) -> str:
    text = _SPACES.sub("", fold(text))
    return text if "@" in text.strip("@") else ""


def street_tokens(*parts: str) -> str:
    """'123 North Main Street, #4' → '123 n main st apt 4': one line from house number, street and line 2."""
    text = " ".join(fold(p) for p in parts if p).replace("#", " apt ")
    text = _NOT_WORD.sub(" ", text)
    return " ".join(_STREET_WORDS.get(word, word) for word in text.split())


def birth_date(text: str) -> str:
    """YYYYMMDD from YYYYMMDD, YYYY-MM-DD or MM/DD/YYYY (DD/MM when the first part is over 12); else ''.

    Impossible dates (a typo made the month 13) keep their digits, so a one-digit
    typo is still one digit away from the right date.
    """
    text = str(text).strip()
    if not text:
        return ""
    if " " in text:  # Excel datetimes: '1980-02-03 00:00:00'
        text = text.split(" ", 1)[0]
    match = _COMPACT_DATE.match(text) or _ISO_DATE.match(text)
    if match:
        year, month, day = (int(g) for g in match.groups())
    else:
        match = _DAY_FIRST_OR_US_DATE.match(text)
        if not match:
            digits = _NOT_DIGITS.sub("", text)
            return digits if len(digits) == 8 else ""
        month, day, year = (int(g) for g in match.groups())
        if month > 12 >= day:
            month, day = day, month
        if year < 100:
            year += 1900 if year > 30 else 2000
    return f"{year:04d}{month:02d}{day:02d}"


def postcode(zip_text: str, street_line: str) -> str:
    """Letters and digits of a postcode ('10118-0110' → '10118'); a US ZIP at the end of a one-line address."""
    text = fold(zip_text)
    if text:
        head = text.split("-", 1)[0] if re.match(r"^\d{5}-\d{4}$", text) else text
        return _NOT_ALNUM.sub("", head)
    match = _ZIP_IN_TEXT.search(fold(street_line))
    return match.group(1) if match else ""


def _column(df: pd.DataFrame, mapping: dict, role: str) -> np.ndarray:
    column = mapping.get(role)
    if column is None or column not in df.columns:
        return np.full(len(df), "", dtype=object)
    return df[column].fillna("").astype(str).to_numpy(dtype=object)


def _each(values: np.ndarray, fn: Callable[[str], str]) -> np.ndarray:
    """fn over each distinct value once: names, towns, dates and postcodes repeat a lot."""
    codes, uniques = pd.factorize(values)
    if not len(uniques):
        return np.full(len(values), "", dtype=object)
    mapped = np.empty(len(uniques), dtype=object)
    mapped[:] = [fn(value) for value in uniques]
    return mapped[codes]


def _soundex(word: str) -> str:
    return jellyfish.soundex(word) if word else ""


def _town(text: str) -> str:
    return " ".join(_NOT_LETTERS_OR_SPACE.sub(" ", fold(text)).split())


def _identifier(text: str) -> str:
    return _NOT_ALNUM.sub("", fold(text))


def _first_number(street: str) -> str:
    return next((t for t in street.split() if t[:1].isdigit()), "")


def _first_word(street: str) -> str:
    return next((t for t in street.split() if not t[:1].isdigit()), "")


def _email_local(email: str) -> str:
    return email.partition("@")[0].partition("+")[0].replace(".", "")


def _day_month_sorted(dob: str) -> str:
    return f"{dob[:4]}{min(dob[4:6], dob[6:8])}{max(dob[4:6], dob[6:8])}" if dob else ""


def _swapped(dob: str) -> str:
    return f"{dob[:4]}{dob[6:8]}{dob[4:6]}" if len(dob) == 8 else ""


def _key(*parts: np.ndarray) -> np.ndarray:
    """Parts joined by spaces; '' (no key) where any part is empty."""
    present = np.ones(len(parts[0]), dtype=bool)
    joined = parts[0].copy()
    present &= parts[0] != ""
    for part in parts[1:]:
        present &= part != ""
        joined = joined + " " + part
    return np.where(present, joined, "").astype(object)


def prepare_fields(df: pd.DataFrame, mapping: dict | None = None) -> Fields:
    """Normalised comparison fields for every row of df (same order); blocking keys come from `blocking_keys`."""
    mapping = mapping or guess_columns(df)
    first = _each(_column(df, mapping, "first_name"), letters)
    last = _each(_column(df, mapping, "last_name"), letters)
    full = _column(df, mapping, "name")
    for position in np.flatnonzero((full != "") & (first == "") & (last == "")):
        first[position], last[position] = split_full_name(full[position])
    street_raw = _column(df, mapping, "street")
    one_line = _column(df, mapping, "address")
    street_or_line = np.where(street_raw != "", street_raw, one_line).astype(object)
    lines = _column(df, mapping, "house_number") + " " + street_or_line + " " + _column(df, mapping, "address_2")
    zips = _each(_column(df, mapping, "zip"), lambda z: postcode(z, ""))
    no_zip = zips == ""
    zips[no_zip] = _each(street_or_line[no_zip], lambda line: postcode("", line))
    dob = _each(_column(df, mapping, "dob"), birth_date)
    street = _each(lines, street_tokens)
    phone = _each(_column(df, mapping, "phone"), phone_digits)
    email = _each(_column(df, mapping, "email"), email_address)
    return {
        "first": first,
        "last": last,
        "dob": dob,
        "dob_swapped": _each(dob, _swapped),
        "street": street,
        "house": _each(street, _first_number),
        "city": _each(_column(df, mapping, "city"), _town),
        "zip": zips,
        "state": _each(_column(df, mapping, "state"), letters),
        "phone": phone,
        "phone_last7": _each(phone, lambda p: p[-7:]),
        "email": email,
        "email_user": _each(email, _email_local),
        "identifier": _each(_column(df, mapping, "identifier"), _identifier),
    }


def blocking_keys(fields: Fields, rule: str) -> list[np.ndarray]:
    """The key columns of one blocking rule ('' = no key); a rule's columns share one key space.

    Made on demand and dropped after use: on 200k records each key column
    costs tens of megabytes.
    """
    first, last = fields["first"], fields["last"]
    if rule == "names":  # the whole name in either order (common names' blocks are skipped: see linkage)
        return [_key(np.where(first <= last, first, last).astype(object),
                     np.where(first <= last, last, first).astype(object))]
    if rule in ("phone", "email", "identifier"):
        return [fields[{"phone": "phone_last7", "email": "email_user", "identifier": "identifier"}[rule]]]
    if rule == "identifier_head":  # an identifier with one typo still shares its first or last 60 %
        return [_each(fields["identifier"], lambda v: v[:-(len(v) * 2 // 5)] if len(v) >= 5 else "")]
    if rule == "identifier_tail":
        return [_each(fields["identifier"], lambda v: v[len(v) * 2 // 5:] if len(v) >= 5 else "")]
    if rule == "house_zip":
        return [_key(fields["house"], fields["zip"])]
    if rule == "house_street":
        return [_key(fields["house"], _each(_each(fields["street"], _first_word), _soundex))]
    sound_first, sound_last = _each(first, _soundex), _each(last, _soundex)
    zip3 = _each(fields["zip"], lambda z: z[:3])
    if rule in ("names_birth_year", "names_zip"):  # soundex of both names, either order
        low = np.where(sound_first <= sound_last, sound_first, sound_last).astype(object)
        high = np.where(sound_first <= sound_last, sound_last, sound_first).astype(object)
        return [_key(low, high, _each(fields["dob"], lambda d: d[:4]) if rule == "names_birth_year" else zip3)]
    if rule == "name_zip":  # either name + postcode
        return [_key(sound_first, fields["zip"]), _key(sound_last, fields["zip"])]
    initial_first, initial_last = _each(first, lambda w: w[:1]), _each(last, lambda w: w[:1])
    if rule == "dob":  # date of birth (day and month in either order) + the initial of either name
        dob_sorted = _each(fields["dob"], _day_month_sorted)
        return [_key(dob_sorted, initial_first), _key(dob_sorted, initial_last)]
    # one name's soundex + the other's initial + postcode prefix or town (either order: swapped names meet)
    place = zip3 if rule == "name_zip3" else _each(fields["city"], _soundex)
    if rule not in ("name_zip3", "name_town"):
        raise KeyError(f"unknown blocking rule {rule!r}")
    return [_key(sound_first, initial_last, place), _key(sound_last, initial_first, place)]


def concat_fields(parts: Sequence[Fields]) -> Fields:
    """One table of fields from several (upload first, then history)."""
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
