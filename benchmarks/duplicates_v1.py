# ruff: noqa: E501  (frozen copy of the old module, kept as it was)
"""FROZEN: the weighted-score duplicate finder Spindle used before probabilistic linkage (kept for benchmarks only).

benchmarks/bench_linkage.py runs it side by side with `streamlit_app.validation.duplicates` so the
gain stays measured; the app never imports it. Do not improve it here. Its original description:

Find likely duplicate people within an upload and against earlier uploads (history).

Why: the same person re-requests a book with a typo in their name, a
reformatted phone or a new e-mail. Comparing every pair is impossible at
scale (100k x 100k = 10^10 pairs), so:

1. Blocking: only records sharing at least one key become candidate pairs.
   Keys: sorted metaphone codes of first + last name (swapped names still
   meet) + ZIP3; soundex of either name + ZIP; the last 7 phone digits; the
   e-mail local part; the date of birth; house number + ZIP. A key shared by
   more than MAX_BLOCK records (a placeholder such as 1900-01-01 or an
   office phone) says nothing and is skipped.
2. Scoring: rapidfuzz `process.cpdist` scores the candidate pairs field by
   field in native threads (workers=-1, dtype=uint8, score_cutoff, chunks of
   CHUNK pairs). Name: first and last compared apart, both orders, 0.75 x
   weaker + 0.25 x stronger, so a household member (same surname, other
   first name) stays low while a typo stays high. Phone, e-mail, date of
   birth are identifiers: 100 equal, 90 same local part / last 7 digits,
   80 one keystroke off or day/month swapped, else DIFFERENT_PHONE (30) /
   DIFFERENT_EMAIL (40; people have several) / 0 (another birthday).
   Address: token_sort_ratio of the USPS-abbreviated street + ZIP.
3. One weighted score: name .35, phone .20, e-mail .20, address .15,
   dob .10, averaged over the fields both records have, dividing by at
   least MIN_DIVISOR (0.6), so a shared name plus one more field is not
   enough on its own.

DEFAULT_THRESHOLD = 78 comes from `benchmarks.bench_validation.threshold_table`
on `sample_data.labelled_duplicate_set` (n=5,000, 10 % re-entries with typos,
swapped names, reformatted phones/addresses/dates, dropped or new e-mails,
moves, phone typos; 5 % household members and frequent names as hard
negatives), mean of seeds 7, 8, 9:

    threshold   all columns      no dob           no e-mail        no dob, no e-mail
                P      R         P      R         P      R         P      R
       70     0.995  1.000     0.914  0.997     0.991  1.000     0.991  0.975
       75     0.999  0.998     0.992  0.994     0.997  1.000     0.992  0.973
       78     1.000  0.993     0.994  0.986     0.998  1.000     0.992  0.962
       80     1.000  0.987     0.997  0.982     0.999  0.996     0.992  0.951
       85     1.000  0.948     1.000  0.909     1.000  0.972     0.995  0.815

78 keeps precision >= 0.99 whichever columns a sheet has (a false duplicate
can make someone's request vanish) with recall >= 0.96. 100k uploads vs 100k
history: ~12-27 s and ~630 MB peak RSS including the data (bench_duplicates).
"""
from __future__ import annotations

import re
import unicodedata

import jellyfish
import numpy as np
import pandas as pd
from rapidfuzz import fuzz, process
from rapidfuzz.distance import Levenshtein

from streamlit_app.validation.records import guess_columns, sheet_rows

DEFAULT_THRESHOLD = 78.0
WEIGHTS = {"name": 0.35, "phone": 0.20, "email": 0.20, "address": 0.15, "dob": 0.10}
MIN_DIVISOR = 0.6
MAX_BLOCK = 1000
CHUNK = 500_000
FIELDS = tuple(WEIGHTS)
DIFFERENT_PHONE = 30
DIFFERENT_EMAIL = 40
NAME_PART_CUTOFF = 50

_STREET_WORDS = {
    "street": "st", "avenue": "ave", "av": "ave", "road": "rd", "drive": "dr", "lane": "ln", "court": "ct",
    "boulevard": "blvd", "place": "pl", "terrace": "ter", "highway": "hwy", "parkway": "pkwy", "circle": "cir",
    "square": "sq", "trail": "trl", "north": "n", "south": "s", "east": "e", "west": "w", "northeast": "ne",
    "northwest": "nw", "southeast": "se", "southwest": "sw", "apartment": "apt", "unit": "apt", "suite": "ste",
    "number": "apt", "no": "apt",
}
_TITLES_AND_SUFFIXES = frozenset({"mr", "mrs", "ms", "miss", "dr", "prof", "jr", "sr", "ii", "iii", "iv"})
_ZIP_IN_TEXT = re.compile(r"\b(\d{5})(?:-\d{4})?\s*$")


# --------------------------------------------------------------------------- preparing fields

def _fold(text: object) -> str:
    """Accents, case and stray spaces do not make a different person."""
    text = "" if text is None or text != text else str(text)
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return text.lower().strip()


def _names(full: str, first: str, last: str) -> tuple[str, str]:
    """First and last name as letters only; from the full name when the parts are not mapped.

    'Smith, Jane' → jane / smith; 'Dr. Jane Q. Smith Jr.' → jane / smith; 'Smith' → '' / smith.
    """
    first, last = _letters(first), _letters(last)
    if first or last:
        return first, last
    full = _fold(full)
    if "," in full:
        surname, _, given = full.partition(",")
        full = f"{given} {surname}"
    tokens = [_letters(t) for t in full.split()]
    tokens = [t for t in tokens if t and t not in _TITLES_AND_SUFFIXES]
    if not tokens:
        return "", ""
    return (tokens[0], tokens[-1]) if len(tokens) > 1 else ("", tokens[0])


_NOT_LETTERS = re.compile(r"[^a-z]")
_NOT_DIGITS = re.compile(r"\D")
_SPACES = re.compile(r"\s")
_NOT_WORD = re.compile(r"[^a-z0-9 ]")
_ZIP_START = re.compile(r"\s*(\d{5})")


def _letters(text: str) -> str:
    return _NOT_LETTERS.sub("", _fold(text))


def _phone(text: str) -> str:
    """Digits only, without a US leading 1; under 7 digits is not a usable phone."""
    digits = _NOT_DIGITS.sub("", str(text))
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    return digits if len(digits) >= 7 else ""


def _email(text: str) -> str:
    text = _SPACES.sub("", _fold(text))
    return text if "@" in text.strip("@") else ""


def _street(text: str) -> str:
    """'123 North Main Street, #4' → '123 n main st apt 4' (USPS abbreviations)."""
    text = _fold(text).replace("#", " apt ")
    text = _NOT_WORD.sub(" ", text)
    return " ".join(_STREET_WORDS.get(word, word) for word in text.split())


_ISO_DATE = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})$")
_US_DATE = re.compile(r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{4}|\d{2})$")


def _dob(text: str) -> str:
    """ISO date from YYYY-MM-DD or US MM/DD/YYYY (MM/DD/YY pivots at 30); other text is kept as typed."""
    text = str(text).strip()
    if not text:
        return ""
    if " " in text:  # Excel datetimes: '1980-02-03 00:00:00'
        text = text.split(" ", 1)[0]
    match = _ISO_DATE.match(text)
    if match:
        year, month, day = (int(g) for g in match.groups())
    else:
        match = _US_DATE.match(text)
        if not match:
            return text.lower()
        month, day, year = (int(g) for g in match.groups())
        if year < 100:
            year += 1900 if year > 30 else 2000
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return text.lower()
    return f"{year:04d}-{month:02d}-{day:02d}"


def _column(df: pd.DataFrame, mapping: dict, role: str) -> list[str]:
    column = mapping.get(role)
    if column is None:
        return [""] * len(df)
    return ["" if v is None or v != v else str(v) for v in df[column].tolist()]


def prepare(df: pd.DataFrame, mapping: dict | None = None) -> pd.DataFrame:
    """Normalised comparison fields and blocking keys, one row per record (same order as df)."""
    mapping = mapping or guess_columns(df)
    names = [_names(*parts) for parts in zip(_column(df, mapping, "name"), _column(df, mapping, "first_name"),
                                             _column(df, mapping, "last_name"))]
    first = [f for f, _ in names]
    last = [l for _, l in names]
    phone = [_phone(v) for v in _column(df, mapping, "phone")]
    email = [_email(v) for v in _column(df, mapping, "email")]
    local = [e.partition("@")[0].partition("+")[0].replace(".", "") for e in email]
    street_raw = [s or a for s, a in zip(_column(df, mapping, "street"), _column(df, mapping, "address"))]
    zip_raw = _column(df, mapping, "zip")
    zip5 = []
    for z, line in zip(zip_raw, street_raw):
        match = _ZIP_START.match(z) or _ZIP_IN_TEXT.search(line)
        zip5.append(match.group(1) if match else "")
    street = [_street(v) for v in street_raw]
    address = [f"{s} {z}".strip() for s, z in zip(street, zip5)]
    dob = [_dob(v) for v in _column(df, mapping, "dob")]
    meta = [(_metaphone(f), _metaphone(l)) for f, l in names]
    return pd.DataFrame({
        "first": first,
        "last": last,
        "phone": phone,
        "email": email,
        "address": address,
        "dob": dob,
        "dob_swapped": [f"{d[:5]}{d[8:10]}-{d[5:7]}" if len(d) == 10 and d[4] == "-" else "" for d in dob],
        "key_name": [f"{'|'.join(sorted(m))} {z[:3]}" if m[0] and m[1] else "" for m, z in zip(meta, zip5)],
        "key_first_zip": [f"{_soundex(f)} {z}" if f and z else "" for f, z in zip(first, zip5)],
        "key_last_zip": [f"{_soundex(l)} {z}" if l and z else "" for l, z in zip(last, zip5)],
        "key_phone": [p[-7:] for p in phone],
        "key_email": local,
        "key_dob": dob,
        "key_house": [f"{s.split(' ', 1)[0]} {z}" if z and s[:1].isdigit() else "" for s, z in zip(street, zip5)],
    }, dtype=object)


def _metaphone(word: str) -> str:
    return jellyfish.metaphone(word)[:5] if word else ""


def _soundex(word: str) -> str:
    return jellyfish.soundex(word) if word else ""


# One pass per blocking idea; two columns feed the "either name + ZIP" pass.
BLOCKING_PASSES = {
    "name": ("key_name",),
    "name_zip": ("key_first_zip", "key_last_zip"),
    "phone": ("key_phone",),
    "email": ("key_email",),
    "dob": ("key_dob",),
    "house": ("key_house",),
}


# --------------------------------------------------------------------------- candidate pairs

def _keys(prepared: pd.DataFrame, columns: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(record index, key) for every non-empty key in these columns."""
    idx = np.concatenate([np.arange(len(prepared), dtype=np.int64)] * len(columns))
    keys = np.concatenate([prepared[c].to_numpy(dtype=object) for c in columns])
    keep = keys != ""
    return idx[keep], keys[keep]


def candidate_pairs(left: pd.DataFrame, right: pd.DataFrame | None = None, max_block: int = MAX_BLOCK) -> np.ndarray:
    """Unique (i, j) index pairs sharing a blocking key; right=None pairs left with itself (i < j)."""
    width = np.int64(len(left) if right is None else len(right))
    found = [np.empty(0, dtype=np.int64)]
    for columns in BLOCKING_PASSES.values():
        left_idx, left_keys = _keys(left, columns)
        right_idx, right_keys = (left_idx, left_keys) if right is None else _keys(right, columns)
        codes, uniques = pd.factorize(np.concatenate([left_keys, right_keys]))
        left_codes, right_codes = codes[:len(left_keys)], codes[len(left_keys):]
        sizes = np.bincount(left_codes, minlength=len(uniques))
        if right is not None:
            sizes += np.bincount(right_codes, minlength=len(uniques))
        usable = sizes <= max_block
        lk = pd.DataFrame({"code": left_codes, "i": left_idx})[usable[left_codes]]
        rk = pd.DataFrame({"code": right_codes, "j": right_idx})[usable[right_codes]]
        merged = lk.merge(rk, on="code")
        i, j = merged["i"].to_numpy(), merged["j"].to_numpy()
        if right is None:
            keep = i < j
            i, j = i[keep], j[keep]
        found.append(np.unique(i * width + j))
    codes = np.unique(np.concatenate(found))
    return np.stack([codes // width, codes % width], axis=1)


# --------------------------------------------------------------------------- scoring

def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise fuzz.ratio; name parts under NAME_PART_CUTOFF alike are simply different (0)."""
    return process.cpdist(a, b, scorer=fuzz.ratio, workers=-1, dtype=np.uint8, score_cutoff=NAME_PART_CUTOFF)


def _name_scores(left: pd.DataFrame, right: pd.DataFrame, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last names compared separately, in both orders (swapped entry), the better order kept.

    0.75 x the weaker + 0.25 x the stronger name: 'Janet Taylor' vs 'John
    Taylor' (household members) scores 58, a typo in either name ~80.
    """
    f1, l1 = left["first"].to_numpy(dtype=object)[i], left["last"].to_numpy(dtype=object)[i]
    f2, l2 = right["first"].to_numpy(dtype=object)[j], right["last"].to_numpy(dtype=object)[j]
    lasts = (l1 != "") & (l2 != "")
    firsts = lasts & (f1 != "") & (f2 != "")
    score = np.zeros(len(i), dtype=np.uint8)
    only_last = lasts & ~firsts
    if only_last.any():
        score[only_last] = _ratio(l1[only_last], l2[only_last])
    if firsts.any():
        a1, b1, a2, b2 = f1[firsts], l1[firsts], f2[firsts], l2[firsts]
        straight = _combine(_ratio(a1, a2), _ratio(b1, b2))
        swapped = _combine(_ratio(a1, b2), _ratio(b1, a2))
        score[firsts] = np.maximum(straight, swapped)
    return score, lasts


def _combine(first: np.ndarray, last: np.ndarray) -> np.ndarray:
    low = np.minimum(first, last).astype(np.float32)
    high = np.maximum(first, last).astype(np.float32)
    return np.rint(0.75 * low + 0.25 * high).astype(np.uint8)


def _levels(a: np.ndarray, b: np.ndarray, different: int) -> np.ndarray:
    """Identifiers match or they do not: 100 equal, 80 one keystroke apart, else `different`."""
    distance = process.cpdist(a, b, scorer=Levenshtein.distance, workers=-1, dtype=np.uint8, score_cutoff=1)
    return np.where(distance == 0, 100, np.where(distance == 1, 80, different)).astype(np.uint8)


def _phone_scores(a: np.ndarray, b: np.ndarray, a7: np.ndarray, b7: np.ndarray) -> np.ndarray:
    """Same digits 100, same last 7 digits (area code left out) 90, one digit off 80, else DIFFERENT_PHONE."""
    score = _levels(a, b, DIFFERENT_PHONE)
    score[(a7 == b7) & (score < 90)] = 90
    return score


def _email_scores(a: np.ndarray, b: np.ndarray, local_a: np.ndarray, local_b: np.ndarray) -> np.ndarray:
    """Same address 100, same local part at another provider 90, one keystroke off 80, else DIFFERENT_EMAIL.

    E-mails made from names (jsmith12@, jsmith@) look alike for namesakes, so
    likeness below a typo earns nothing; a different e-mail is only weak
    evidence (people have several), hence a middling DIFFERENT_EMAIL.
    """
    score = _levels(a, b, DIFFERENT_EMAIL)
    score[(local_a == local_b) & (score < 90)] = 90
    return score


def _dob_scores(a: np.ndarray, b: np.ndarray, swapped_a: np.ndarray) -> np.ndarray:
    """Dates match or they do not: 100 equal, 80 one digit off or day/month swapped, else 0."""
    score = _levels(a, b, 0)
    score[(swapped_a == b) & (score == 0)] = 80
    return score


def score_pairs(left: pd.DataFrame, right: pd.DataFrame, pairs: np.ndarray) -> dict[str, np.ndarray]:
    """Per-field uint8 scores (0-100), present masks and the weighted total for each pair."""
    n = len(pairs)
    scores = {field: np.zeros(n, dtype=np.uint8) for field in FIELDS}
    present = {field: np.zeros(n, dtype=bool) for field in FIELDS}
    for start in range(0, n, CHUNK):
        i = pairs[start:start + CHUNK, 0]
        j = pairs[start:start + CHUNK, 1]
        stop = start + len(i)
        scores["name"][start:stop], present["name"][start:stop] = _name_scores(left, right, i, j)
        for field in ("phone", "email", "address", "dob"):
            a = left[field].to_numpy(dtype=object)[i]
            b = right[field].to_numpy(dtype=object)[j]
            both = (a != "") & (b != "")
            present[field][start:stop] = both
            if not both.any():
                continue
            a, b, li, rj = a[both], b[both], i[both], j[both]
            if field == "phone":
                part = _phone_scores(a, b, left["key_phone"].to_numpy(dtype=object)[li],
                                     right["key_phone"].to_numpy(dtype=object)[rj])
            elif field == "email":
                part = _email_scores(a, b, left["key_email"].to_numpy(dtype=object)[li],
                                     right["key_email"].to_numpy(dtype=object)[rj])
            elif field == "dob":
                part = _dob_scores(a, b, left["dob_swapped"].to_numpy(dtype=object)[li])
            else:
                part = process.cpdist(a, b, scorer=fuzz.token_sort_ratio, workers=-1, dtype=np.uint8)
            block = scores[field][start:stop]
            block[both] = part
    weighted = np.zeros(n, dtype=np.float32)
    divisor = np.zeros(n, dtype=np.float32)
    for field, weight in WEIGHTS.items():
        weighted += weight * scores[field] * present[field]
        divisor += weight * present[field]
    total = weighted / np.maximum(divisor, MIN_DIVISOR)
    return {"scores": scores, "present": present, "total": total}


_LABELS = {"name": "name", "phone": "phone", "email": "e-mail", "address": "address", "dob": "date of birth"}


def _reasons(row_scores: dict[str, int | None]) -> str:
    parts = []
    for field in FIELDS:
        value = row_scores[field]
        if value is None:
            continue
        if value == 100:
            parts.append(f"same {_LABELS[field]}")
        elif value >= 80:
            parts.append(f"similar {_LABELS[field]} ({value})")
        elif value < 50:
            parts.append(f"different {_LABELS[field]}")
    return "; ".join(parts)


PAIR_COLUMNS = ["left_row", "right_row", "source", *FIELDS, "score", "reasons"]


def find_duplicates(
    df: pd.DataFrame,
    history: pd.DataFrame | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    mapping: dict | None = None,
) -> pd.DataFrame:
    """Scored likely-duplicate pairs, best first.

    left_row is the upload's sheet row (the 'row' index `read_sheet` sets,
    else position + 2, as under a header line); right_row is another sheet row
    (source 'upload') or the history record's `id` column, else its row
    (source 'history'). Field scores are 0-100, empty where a record lacks
    the field. `history` columns are recognised by `guess_columns`.
    """
    upload = prepare(df, mapping)
    left_rows = np.asarray(sheet_rows(df), dtype=object)
    frames = [_scored(upload, upload, candidate_pairs(upload), left_rows, left_rows, "upload", threshold)]
    if history is not None and len(history):
        past = prepare(history, guess_columns(history))
        ids = history["id"].to_numpy(dtype=object) if "id" in history.columns else np.asarray(sheet_rows(history), dtype=object)
        frames.append(_scored(upload, past, candidate_pairs(upload, past), left_rows, ids, "history", threshold))
    result = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PAIR_COLUMNS)
    return result.sort_values(["score", "left_row"], ascending=[False, True], ignore_index=True)


def _scored(left: pd.DataFrame, right: pd.DataFrame, pairs: np.ndarray, left_ids: np.ndarray,
            right_ids: np.ndarray, source: str, threshold: float) -> pd.DataFrame:
    scored = score_pairs(left, right, pairs)
    keep = scored["total"] >= threshold
    pairs = pairs[keep]
    out = {
        "left_row": left_ids[pairs[:, 0]],
        "right_row": right_ids[pairs[:, 1]],
        "source": np.full(len(pairs), source, dtype=object),
    }
    kept: dict[str, list] = {}
    for field in FIELDS:
        values = scored["scores"][field][keep].tolist()
        present = scored["present"][field][keep].tolist()
        kept[field] = [v if p else None for v, p in zip(values, present)]
        out[field] = pd.array(kept[field], dtype="Int16")
    out["score"] = np.round(scored["total"][keep].astype(np.float64), 1)
    out["reasons"] = [_reasons(dict(zip(FIELDS, row))) for row in zip(*(kept[f] for f in FIELDS))]
    return pd.DataFrame(out, columns=PAIR_COLUMNS)


def cluster_pairs(pairs: pd.DataFrame) -> list[list]:
    """Groups of upload rows that are all the same person (pairs joined transitively).

    Only 'upload' pairs are used: a history match is shown as its own pair.
    """
    parent: dict = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    upload = pairs[pairs["source"] == "upload"] if "source" in pairs.columns else pairs
    for a, b in zip(upload["left_row"].tolist(), upload["right_row"].tolist()):
        root_a, root_b = find(a), find(b)
        if root_a != root_b:
            parent[max(root_a, root_b)] = min(root_a, root_b)
    groups: dict = {}
    for node in parent:
        groups.setdefault(find(node), []).append(node)
    return sorted((sorted(g) for g in groups.values() if len(g) > 1), key=lambda g: g[0])
