"""Comparison levels per field, the Fellegi–Sunter way: exact, close at a few thresholds, different, missing.

Why: a probabilistic linkage model learns how much each level is worth
(m = how often true matches land there, u = how often random pairs do), so the
levels only have to be ordered from most to least alike; the data decide the
weights. Jaro–Winkler for names and towns, Damerau–Levenshtein for dates,
postcodes, phones and identifiers, token overlap for the street line (house
number included). A field missing on either side is level -1: no evidence.

First and last name are compared in the order that fits better, so a swapped
given name and surname is the same name; nicknames (Bill ~ William) have a level
of their own; a date of birth with day and month swapped has one too.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rapidfuzz import fuzz, process
from rapidfuzz.distance import DamerauLevenshtein, JaroWinkler

from streamlit_app.validation.linkage_fields import Fields
from streamlit_app.validation.nicknames import nickname_groups

MISSING = -1


@dataclass(frozen=True)
class Comparison:
    """One field's levels, best first (the last level is 'different'), and the prior m and u per level.

    The priors are generic guesses that EM and random-pair sampling replace on
    any upload of a useful size; they keep tiny sheets sensible.
    """

    name: str
    levels: tuple[str, ...]  # words for each level: "same surname", "surname differs by one letter", ...
    m_prior: tuple[float, ...]
    u_prior: tuple[float, ...]
    household_prior: tuple[float, ...]  # another person at the same address: same surname/address, other first name
    term_frequency: bool = False  # exact agreement on a rare value counts more than on a common one


COMPARISONS: tuple[Comparison, ...] = (
    Comparison("first_name",
               ("same first name", "first names are forms of one name (nickname)", "first name differs by one letter",
                "first names very similar", "first names somewhat similar", "different first name"),
               (0.85, 0.02, 0.05, 0.03, 0.02, 0.03), (0.01, 0.001, 0.003, 0.01, 0.05, 0.926),
               (0.02, 0.01, 0.02, 0.03, 0.07, 0.85), True),
    Comparison("last_name",
               ("same surname", "surname differs by one letter", "surnames very similar", "surnames somewhat similar",
                "different surname"),
               (0.88, 0.05, 0.03, 0.02, 0.02), (0.005, 0.003, 0.01, 0.05, 0.932),
               (0.85, 0.03, 0.02, 0.02, 0.08), True),
    Comparison("dob",
               ("same date of birth", "date of birth with day and month swapped", "date of birth differs by one digit",
                "date of birth differs by two digits", "different date of birth"),
               (0.88, 0.02, 0.06, 0.02, 0.02), (0.0002, 0.0001, 0.003, 0.03, 0.9667),
               (0.01, 0.005, 0.01, 0.025, 0.95)),
    Comparison("address",
               ("same street address", "street address nearly the same", "street address similar",
                "street address somewhat similar", "different street address"),
               (0.70, 0.12, 0.06, 0.04, 0.08), (0.0005, 0.001, 0.005, 0.05, 0.9435),
               (0.80, 0.08, 0.04, 0.03, 0.05)),
    Comparison("city",
               ("same town", "town differs slightly", "town somewhat similar", "different town"),
               (0.85, 0.05, 0.03, 0.07), (0.01, 0.002, 0.01, 0.978),
               (0.90, 0.03, 0.02, 0.05), True),
    Comparison("zip",
               ("same postcode", "postcode differs by one digit", "different postcode"),
               (0.90, 0.05, 0.05), (0.01, 0.02, 0.97),
               (0.90, 0.04, 0.06), True),
    Comparison("state",
               ("same state", "different state"),
               (0.95, 0.05), (0.2, 0.8),
               (0.95, 0.05)),
    Comparison("phone",
               ("same phone", "phone differs by one digit or only in area code", "different phone"),
               (0.80, 0.08, 0.12), (1e-5, 1e-4, 0.99989),
               (0.50, 0.05, 0.45)),
    Comparison("email",
               ("same e-mail", "e-mail differs slightly or only in provider", "different e-mail"),
               (0.75, 0.10, 0.15), (1e-5, 1e-4, 0.99989),
               (0.02, 0.08, 0.90)),
    Comparison("identifier",
               ("same identifier", "identifier differs by one character", "identifier differs by two characters",
                "different identifier"),
               (0.85, 0.06, 0.03, 0.06), (1e-6, 5e-5, 5e-4, 0.999449),
               (0.005, 0.005, 0.01, 0.98)),
)
BY_NAME = {c.name: c for c in COMPARISONS}
# the field whose value frequency adjusts an exact match (term frequency)
TF_FIELD = {"first_name": "first", "last_name": "last", "city": "city", "zip": "zip"}

_JW = JaroWinkler.normalized_similarity
_DL = DamerauLevenshtein.distance


def _unequal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairs worth measuring: both present and not already equal (equal strings need no scorer)."""
    return (a != b) & (a != "") & (b != "")


def _similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Jaro–Winkler similarity: 1 for equal strings, 0 where one is missing."""
    out = (a == b).astype(np.float32)
    todo = _unequal(a, b)
    if todo.any():
        out[todo] = process.cpdist(a[todo], b[todo], scorer=_JW, workers=-1, dtype=np.float32)
    return out


def _distance(a: np.ndarray, b: np.ndarray, cutoff: int) -> np.ndarray:
    """Damerau–Levenshtein distance, capped at cutoff + 1 (also where one is missing)."""
    out = np.where(a == b, 0, cutoff + 1).astype(np.int32)
    todo = _unequal(a, b)
    if todo.any():
        out[todo] = process.cpdist(a[todo], b[todo], scorer=_DL, workers=-1, dtype=np.int32, score_cutoff=cutoff)
    return out


def _by_rules(both: np.ndarray, rules: list[np.ndarray]) -> np.ndarray:
    """Level = index of the first rule a pair meets (last level if none); MISSING where a side is empty."""
    level = np.full(len(both), len(rules), dtype=np.int8)
    for index in range(len(rules) - 1, -1, -1):
        level[rules[index]] = index
    level[~both] = MISSING
    return level


def _name_levels(a: np.ndarray, b: np.ndarray, sim: np.ndarray, nicknames: bool) -> np.ndarray:
    """sim: Jaro–Winkler of a and b (already measured to choose the name order)."""
    both = (a != "") & (b != "")
    dist = np.full(len(a), 2, dtype=np.int32)
    close = sim >= 0.7  # one letter apart is never less alike than this (but for 2-letter names)
    dist[close] = _distance(a[close], b[close], 1)
    exact = a == b
    rules = [exact]
    if nicknames:
        table = nickname_groups()
        known = both & ~exact & np.fromiter((x in table for x in a), bool, len(a)) & \
            np.fromiter((y in table for y in b), bool, len(b))
        nick = np.zeros(len(a), dtype=bool)
        nick[known] = [bool(table[x] & table[y]) for x, y in zip(a[known], b[known])]
        rules.append(nick)
    rules += [dist <= 1, sim >= 0.9, sim >= 0.8]
    return _by_rules(both, rules)


def _date_levels(a: np.ndarray, b: np.ndarray, swapped: np.ndarray) -> np.ndarray:
    both = (a != "") & (b != "")
    dist = _distance(a, b, 2)
    return _by_rules(both, [a == b, (swapped == b) & both, dist <= 1, dist <= 2])


def _street_levels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    both = (a != "") & (b != "")
    overlap = np.where(a == b, 100, 0).astype(np.uint8)
    todo = _unequal(a, b)
    if todo.any():
        overlap[todo] = process.cpdist(a[todo], b[todo], scorer=fuzz.token_set_ratio, workers=-1, dtype=np.uint8)
    return _by_rules(both, [a == b, overlap >= 90, overlap >= 75, overlap >= 55])


def _town_levels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    both = (a != "") & (b != "")
    sim = _similarity(a, b)
    return _by_rules(both, [a == b, sim >= 0.92, sim >= 0.8])


def _code_levels(a: np.ndarray, b: np.ndarray, max_distance: int) -> np.ndarray:
    """Exact, then one, two... characters apart (DL), then different."""
    both = (a != "") & (b != "")
    dist = _distance(a, b, max_distance)
    return _by_rules(both, [dist <= d for d in range(max_distance + 1)])


def _phone_levels(a: np.ndarray, b: np.ndarray, a7: np.ndarray, b7: np.ndarray) -> np.ndarray:
    both = (a != "") & (b != "")
    last7 = a7 == b7
    return _by_rules(both, [a == b, last7 | (_distance(a, b, 1) <= 1)])


def _email_levels(a: np.ndarray, b: np.ndarray, local_a: np.ndarray, local_b: np.ndarray,
                  first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Same address; one keystroke off or the same user name at another provider; different.

    A user name made of the person's name (jsmith@, mary.jones@ ~ maryjones@)
    that is merely alike says no more than the names already did (namesakes
    have such addresses too), so it is no evidence (MISSING) rather than a
    second, dependent count.
    """
    both = (a != "") & (b != "")
    alike = ((local_a == local_b) & (local_a != "")) | (_distance(a, b, 1) <= 1)
    level = _by_rules(both, [a == b, alike])
    for k in np.flatnonzero((level == 1) & both):
        user = local_a[k]
        if (len(first[k]) >= 3 and first[k] in user) or (len(last[k]) >= 3 and last[k] in user):
            level[k] = MISSING
    return level


def name_order(fields: Fields, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where the second record's first and last name are swapped (both names fit better crossed), and the
    Jaro–Winkler similarity of the first names and of the surnames in the chosen order.

    Both must fit (Jaro–Winkler >= 0.8 each way): Patricia Berry and Emily
    Berry share only the surname, and crossing them would make the surname
    look like a shared first name.
    """
    f1, l1 = fields["first"][i], fields["last"][i]
    f2, l2 = fields["first"][j], fields["last"][j]
    first_last, last_first = _similarity(f1, l2), _similarity(l1, f2)
    first_first, last_last = _similarity(f1, f2), _similarity(l1, l2)
    swap = (first_last + last_first > first_first + last_last + 0.05) & (np.minimum(first_last, last_first) >= 0.8)
    return swap, np.where(swap, first_last, first_first), np.where(swap, last_first, last_last)


def compare(fields: Fields, i: np.ndarray, j: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Level (int8, MISSING = -1) of every comparison for the pairs (i[k], j[k]); and where names were swapped."""
    swap, first_sim, last_sim = name_order(fields, i, j)
    f2 = np.where(swap, fields["last"][j], fields["first"][j])
    l2 = np.where(swap, fields["first"][j], fields["last"][j])
    levels = {
        "first_name": _name_levels(fields["first"][i], f2, first_sim, nicknames=True),
        "last_name": _name_levels(fields["last"][i], l2, last_sim, nicknames=False),
        "dob": _date_levels(fields["dob"][i], fields["dob"][j], fields["dob_swapped"][i]),
        "address": _street_levels(fields["street"][i], fields["street"][j]),
        "city": _town_levels(fields["city"][i], fields["city"][j]),
        "zip": _code_levels(fields["zip"][i], fields["zip"][j], 1),
        "state": _code_levels(fields["state"][i], fields["state"][j], 0),
        "phone": _phone_levels(fields["phone"][i], fields["phone"][j], fields["phone_last7"][i],
                               fields["phone_last7"][j]),
        "email": _email_levels(fields["email"][i], fields["email"][j], fields["email_user"][i],
                               fields["email_user"][j], fields["first"][i], fields["last"][i]),
        "identifier": _code_levels(fields["identifier"][i], fields["identifier"][j], 2),
    }
    _count_a_move_once(levels)
    return levels, swap


def _count_a_move_once(levels: dict[str, np.ndarray]) -> None:
    """Street, town, postcode and state change together when someone moves: that is one fact, not four.

    Where the street line is different and town and postcode are different (or
    missing), only the street comparison speaks; the others become MISSING.
    Counted four times, a move would outweigh a shared name and phone.
    """
    def different(name: str, allow_missing: bool) -> np.ndarray:
        last = len(BY_NAME[name].levels) - 1
        level = levels[name]
        return (level == last) | ((level == MISSING) if allow_missing else False)

    moved = different("address", False) & different("city", True) & different("zip", True)
    for name in ("city", "zip", "state"):
        levels[name][moved] = MISSING
