"""Fellegi–Sunter record linkage: blocking, u from random pairs, m by EM, term frequencies, clusters.

Why: a fixed weighted score tuned on one kind of sheet misses duplicates on
another. The probabilistic model (Fellegi & Sunter 1969, as splink does it)
learns from each upload how much each comparison level is worth:

- u (how often two *different* people land on a level) is measured on random
  pairs of the records, history included; for exact agreement it is counted
  exactly from the value frequencies.
- m (how often the *same* person lands there) and the share of true pairs are
  estimated by expectation–maximisation over the candidate pairs, with u held
  fixed; no labels are needed.
- A third class, another person of the same household (Winkler's three-class
  EM), is learnt alongside: it agrees on surname, address and phone like the
  same person would, and on first name, birthday, e-mail and identifier only by
  chance. Without it EM takes "same address" for "same person".
- A pair's match weight is log2 of the prior odds plus log2(m/u) of each
  comparison's level (0 where a side is missing), minus the household
  correction; an exact match on a rare value (name, town, postcode) gets the
  term-frequency adjustment log2(u/tf(value)). Probability = 2^w / (1 + 2^w).

Small priors (Comparison.m_prior/u_prior/household_prior, a few pseudo-pairs)
keep a sheet of three rows sensible; on real uploads the data outweigh them.

Blocking: candidate pairs share at least one key of several rules
(BLOCKING_RULES: whole name, soundex of both names + birth year or postcode
prefix, either name + postcode, its first three characters or the town,
birthday (day/month either way) + either initial, house number + postcode or
street, phone, e-mail, identifier or 60 % of it), unioned as splink does; a key shared by more than `max_block` records
(a placeholder such as 1900-01-01 or an office phone) says nothing and is
skipped. `blocking_recall` measures how many true pairs survive.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from streamlit_app.validation.comparisons import BY_NAME, COMPARISONS, MISSING, TF_FIELD, compare
from streamlit_app.validation.linkage_fields import Fields, blocking_keys

MAX_BLOCK = 1000
CHUNK = 400_000
RANDOM_PAIRS = (20_000, 100_000)  # random pairs for u: 5 per record, within these bounds
U_PRIOR_PAIRS = 200.0       # pseudo random pairs behind the u prior
M_PRIOR_MATCHES = 5.0       # pseudo true pairs behind the m prior
DUPLICATES_PER_RECORD = 0.1  # prior guess for the share of re-entered people (only the starting point of EM)
EM_ITERATIONS = 40
EM_TOLERANCE = 1e-4
TF_PRIOR_RECORDS = 20.0     # pseudo records behind a value's frequency, so a 3-row sheet is not all 'common'

# what tells two people of one household apart: another household member agrees on these only by chance
PERSONAL = frozenset({"first_name", "dob", "email", "identifier"})

# rules whose blocks must be smaller than MAX_BLOCK: a name shared by more people than this (James Smith; John in
# one town) is too common to pair everyone on it, though rarer names still are
SMALL_BLOCK_RULES = {"names": 30, "name_zip3": 30, "name_town": 30}

BLOCKING_RULES = ("names", "names_birth_year", "names_zip", "name_zip", "name_zip3", "name_town", "dob",
                  "house_zip", "house_street", "phone", "email", "identifier", "identifier_head", "identifier_tail")


# --------------------------------------------------------------------------- blocking

def _keys(columns: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(record index, key) for every non-empty key in these columns."""
    parts_idx, parts_key = [], []
    for keys in columns:
        keep = keys != ""
        parts_idx.append(np.flatnonzero(keep))
        parts_key.append(keys[keep])
    return np.concatenate(parts_idx), np.concatenate(parts_key)


def candidate_pairs(fields: Fields, n_upload: int, max_block: int = MAX_BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """Unique pairs (i, j), i < j, i an upload record (j an upload or history record) sharing a blocking key."""
    width = np.int64(len(fields["first"]))
    found = [np.empty(0, dtype=np.int64)]
    for rule in BLOCKING_RULES:
        all_idx, all_keys = _keys(blocking_keys(fields, rule))
        if not len(all_keys):
            continue
        codes, uniques = pd.factorize(all_keys)
        sizes = np.bincount(codes, minlength=len(uniques))
        usable = (sizes <= min(max_block, SMALL_BLOCK_RULES.get(rule, max_block))) & (sizes > 1)
        keep = usable[codes]
        codes, all_idx = codes[keep], all_idx[keep]
        left = codes[all_idx < n_upload], all_idx[all_idx < n_upload]
        merged = pd.DataFrame({"code": left[0], "i": left[1]}).merge(pd.DataFrame({"code": codes, "j": all_idx}),
                                                                     on="code")
        i, j = merged["i"].to_numpy(np.int64), merged["j"].to_numpy(np.int64)
        keep_pairs = i < j
        found.append(pd.unique(i[keep_pairs] * width + j[keep_pairs]))
    codes = pd.unique(np.concatenate(found))
    codes.sort()
    return codes // width, codes % width


def blocking_recall(fields: Fields, n_upload: int, truth: Sequence[tuple[int, int]]) -> float:
    """Share of true pairs (record positions) that blocking keeps: the ceiling on recall."""
    i, j = candidate_pairs(fields, n_upload)
    width = np.int64(len(fields["first"]))
    kept = set((i * width + j).tolist())
    pairs = [(min(a, b), max(a, b)) for a, b in truth]
    return sum(1 for a, b in pairs if a * width + b in kept) / max(len(pairs), 1)


# --------------------------------------------------------------------------- the model

@dataclass(frozen=True)
class LinkageModel:
    """What was learnt from one upload (+ history).

    Three kinds of pair (Winkler's three-class EM): the same person (m), another
    person of the same household (m_household: same surname, address and often
    phone, different first name and birthday) and unrelated people (u). Without
    the household class EM takes "same address" for "same person".
    """

    m: dict[str, np.ndarray]
    m_household: dict[str, np.ndarray]
    u: dict[str, np.ndarray]
    prior_weight: float      # log2 of P(same person) / P(unrelated) for two random records
    household_prior: float   # log2 of P(same household) / P(unrelated)
    term_frequency: dict[str, np.ndarray]  # per TF comparison: each record's value frequency
    iterations: int

    def level_weights(self, comparison: str) -> np.ndarray:
        """log2(m/u) per level: how much a level says 'same person' rather than 'unrelated'."""
        return np.log2(self.m[comparison] / self.u[comparison])

    def household_weights(self, comparison: str) -> np.ndarray:
        return np.log2(self.m_household[comparison] / self.u[comparison])


def compare_in_chunks(fields: Fields, i: np.ndarray, j: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    levels = {c.name: np.empty(len(i), dtype=np.int8) for c in COMPARISONS}
    swap = np.empty(len(i), dtype=bool)
    for start in range(0, len(i), CHUNK):
        stop = min(start + CHUNK, len(i))
        part, part_swap = compare(fields, i[start:stop], j[start:stop])
        for name, values in part.items():
            levels[name][start:stop] = values
        swap[start:stop] = part_swap
    return levels, swap


def _value_counts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per record: how many records share its value (0 for missing); and the counts per distinct value."""
    codes, uniques = pd.factorize(values)
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    per_record = np.append(counts, 0)[codes]  # code -1 (missing) → 0
    per_record[values == ""] = 0
    return per_record, counts


def _exact_agreement_rate(values: np.ndarray) -> tuple[float, float]:
    """(pairs agreeing exactly, pairs with both sides present) over all pairs of records, counted not sampled."""
    present = values[values != ""]
    _per_record, counts = _value_counts(present)
    n = len(present)
    return float((counts * (counts - 1) / 2).sum()), n * (n - 1) / 2


# comparisons whose exact level is plain equality of one field (names are compared in the better order: sampled)
_EXACT_FIELD = {"dob": "dob", "address": "street", "city": "city", "zip": "zip", "state": "state", "phone": "phone",
                "email": "email", "identifier": "identifier"}


def estimate_u(fields: Fields, seed: int = 0, sample: int | None = None) -> dict[str, np.ndarray]:
    """u per level from random pairs of all records (history included); exact agreement counted exactly.

    Random pairs are almost all two different people, so their level
    frequencies are u. Shrunk towards the prior by U_PRIOR_PAIRS pseudo pairs.
    """
    n = len(fields["first"])
    if n < 2:
        return {c.name: np.asarray(c.u_prior) for c in COMPARISONS}
    sample = sample or min(max(5 * n, RANDOM_PAIRS[0]), RANDOM_PAIRS[1])
    if n * (n - 1) // 2 <= sample:
        i, j = np.triu_indices(n, 1)
    else:
        rng = np.random.default_rng(seed)
        i = rng.integers(0, n, sample)
        j = rng.integers(0, n - 1, sample)
        j = j + (j >= i)
    levels, _swap = compare_in_chunks(fields, i, j)
    u: dict[str, np.ndarray] = {}
    for comparison in COMPARISONS:
        observed = levels[comparison.name]
        counts = np.bincount(observed[observed != MISSING], minlength=len(comparison.levels)).astype(np.float64)
        pairs = counts.sum()
        prior = np.asarray(comparison.u_prior)
        if pairs == 0:
            u[comparison.name] = prior
            continue
        rate = counts / pairs
        field = _EXACT_FIELD.get(comparison.name)
        if field is not None:
            agree, present_pairs = _exact_agreement_rate(fields[field])
            rest = counts[1:].sum()
            if present_pairs:
                exact = agree / present_pairs
                shares = counts[1:] / rest if rest else prior[1:] / prior[1:].sum()
                rate = np.concatenate([[exact], (1 - exact) * shares])
        u[comparison.name] = (rate * pairs + prior * U_PRIOR_PAIRS) / (pairs + U_PRIOR_PAIRS)
    return u


def term_frequencies(fields: Fields) -> dict[str, np.ndarray]:
    """Each record's value frequency per TF comparison, shrunk towards the comparison's exact-match u prior."""
    out = {}
    for comparison, field in TF_FIELD.items():
        values = fields[field]
        per_record, _counts = _value_counts(values)
        present = float((values != "").sum())
        prior = BY_NAME[comparison].u_prior[0]
        out[comparison] = (per_record + TF_PRIOR_RECORDS * prior) / (present + TF_PRIOR_RECORDS)
    return out


def _sum_of_levels(levels: dict[str, np.ndarray], table: dict[str, np.ndarray], start: float) -> np.ndarray:
    total = np.full(len(next(iter(levels.values()))), start, dtype=np.float64)
    for name, values in levels.items():
        total += np.append(table[name], 0.0)[values]  # index -1 (missing) → 0
    return total


def probability(weight: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp2(-np.clip(weight, -60, 60)))


def _log_odds(rate: float) -> float:
    rate = min(max(rate, 1e-12), 0.5)
    return float(np.log2(rate / (1 - rate)))


def estimate_m(levels: dict[str, np.ndarray], u: dict[str, np.ndarray], all_pairs: float,
               expected_matches: float) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], float, float, int]:
    """EM over the candidate pairs with u fixed: m of the same-person and same-household classes and their priors.

    Pairs outside the candidates are taken as unrelated (blocking keeps almost
    all true pairs), so a class's prior is its expected pairs / all pairs.
    """
    m = {c.name: np.asarray(c.m_prior, dtype=np.float64) for c in COMPARISONS}
    house = {c.name: u[c.name] if c.name in PERSONAL else np.asarray(c.household_prior, dtype=np.float64)
             for c in COMPARISONS}
    matches, households = max(expected_matches, 1.0), max(expected_matches / 2, 1.0)
    iterations = 0
    while iterations < EM_ITERATIONS:
        iterations += 1
        same = _sum_of_levels(levels, {k: np.log2(v / u[k]) for k, v in m.items()}, _log_odds(matches / all_pairs))
        home = _sum_of_levels(levels, {k: np.log2(v / u[k]) for k, v in house.items()},
                              _log_odds(households / all_pairs))
        norm = np.logaddexp2(np.logaddexp2(same, home), 0.0)
        p_same, p_home = np.exp2(same - norm), np.exp2(home - norm)
        change = 0.0
        new_m: dict[str, np.ndarray] = {}
        new_house: dict[str, np.ndarray] = {}
        for comparison in COMPARISONS:
            observed = levels[comparison.name]
            known = observed != MISSING
            size = len(comparison.levels)
            for target, old, weights, prior in ((new_m, m, p_same, comparison.m_prior),
                                                (new_house, house, p_home, comparison.household_prior)):
                if target is new_house and comparison.name in PERSONAL:
                    target[comparison.name] = u[comparison.name]  # another person: like anyone else here
                    continue
                counts = np.bincount(observed[known], weights=weights[known], minlength=size)
                smoothed = counts + M_PRIOR_MATCHES * np.asarray(prior)
                target[comparison.name] = smoothed / (counts.sum() + M_PRIOR_MATCHES)
                change = max(change, float(np.abs(target[comparison.name] - old[comparison.name]).max()))
        new_matches, new_households = float(p_same.sum()), float(p_home.sum())
        change = max(change, abs(new_matches - matches) / max(matches, 1.0),
                     abs(new_households - households) / max(households, 1.0))
        m, house, matches, households = new_m, new_house, new_matches, new_households
        if change < EM_TOLERANCE:
            break
    return m, house, _log_odds(matches / all_pairs), _log_odds(households / all_pairs), iterations


def fit(fields: Fields, n_upload: int, levels: dict[str, np.ndarray], seed: int = 0) -> LinkageModel:
    """Learn the model for these records: u from random pairs, m and the priors by EM on the candidates."""
    n_all = len(fields["first"])
    all_pairs = max(n_upload * (n_upload - 1) / 2 + n_upload * (n_all - n_upload), 1.0)
    u = estimate_u(fields, seed)
    m, house, prior_weight, household_prior, iterations = estimate_m(levels, u, all_pairs,
                                                                     DUPLICATES_PER_RECORD * n_upload)
    return LinkageModel(m=m, m_household=house, u=u, prior_weight=prior_weight, household_prior=household_prior,
                        term_frequency=term_frequencies(fields), iterations=iterations)


@dataclass(frozen=True)
class Weights:
    """Per pair: each comparison's weight in bits (same person vs unrelated; TF included; 0 where missing),
    the household correction (≤ 0: how much 'another member of the household' explains the agreement)
    and the total match weight = prior + parts + household correction."""

    parts: dict[str, np.ndarray]
    household: np.ndarray
    total: np.ndarray


def weigh(model: LinkageModel, levels: dict[str, np.ndarray], i: np.ndarray) -> Weights:
    parts: dict[str, np.ndarray] = {}
    tf_total = np.zeros(len(i))
    home = np.full(len(i), model.household_prior)
    for comparison in COMPARISONS:
        level = levels[comparison.name]
        weight = np.append(model.level_weights(comparison.name), 0.0)[level]
        home += np.append(model.household_weights(comparison.name), 0.0)[level]
        if comparison.term_frequency:
            exact = level == 0
            adjust = np.log2(model.u[comparison.name][0] / model.term_frequency[comparison.name][i[exact]])
            weight[exact] += adjust
            tf_total[exact] += adjust
        parts[comparison.name] = weight
    same = np.full(len(i), model.prior_weight)
    for weight in parts.values():
        same += weight
    home += tf_total  # a rare shared surname is as telling for a household as for a person
    household = -np.logaddexp2(0.0, home)  # P(same) / (P(household) + P(unrelated)) relative to P(unrelated)
    return Weights(parts=parts, household=household, total=same + household)


def score(model: LinkageModel, fields: Fields, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Match weights of arbitrary pairs (e.g. group members that blocking did not pair)."""
    levels, _swap = compare_in_chunks(fields, i, j)
    return weigh(model, levels, i).total


# --------------------------------------------------------------------------- clusters

def clusters(edges: Sequence[tuple[int, int, float]],
             weigh: Callable[[list[tuple[int, int]]], Sequence[float] | np.ndarray],
             member_floor: float = 0.0) -> list[list[int]]:
    """Groups over confident pairs without chaining: two groups join only if every cross pair has weight ≥ floor.

    edges: (a, b, match weight) of pairs above the threshold. Strongest edges
    are joined first; a weaker edge that would put two people who do not match
    each other (weight < member_floor, i.e. less likely the same than not at
    the default floor 0) in one group is left out: the weak link is split.
    `weigh(pairs)` returns the match weights of (a, b) pairs that may not be edges.
    """
    known = {(min(a, b), max(a, b)): w for a, b, w in edges}
    group_of: dict[int, int] = {}
    members: dict[int, list[int]] = {}
    for a, b, _w in sorted(edges, key=lambda e: -e[2]):
        ga, gb = group_of.setdefault(a, a), group_of.setdefault(b, b)
        members.setdefault(ga, [a])
        members.setdefault(gb, [b])
        if ga == gb:
            continue
        cross = [(min(x, y), max(x, y)) for x in members[ga] for y in members[gb]]
        unknown = [p for p in cross if p not in known]
        if unknown:
            for pair, weight in zip(unknown, weigh(unknown)):
                known[pair] = float(weight)
        if min(known[p] for p in cross) < member_floor:
            continue
        keep, gone = (ga, gb) if ga < gb else (gb, ga)
        for x in members[gone]:
            group_of[x] = keep
        members[keep] += members.pop(gone)
    return sorted((sorted(g) for g in members.values() if len(g) > 1), key=lambda g: g[0])


# --------------------------------------------------------------------------- explanations

def strength(weight: float) -> str:
    """Words for a weight in bits (log2 Bayes factor): how much a comparison moved the odds."""
    size = abs(weight)
    word = "very strong" if size >= 10 else "strong" if size >= 5 else "moderate" if size >= 2 else "weak"
    if size < 0.5:
        return "no real evidence"
    return word if weight > 0 else f"against, {word}"


def explain(levels: dict[str, int], weights: dict[str, float], swapped: bool, household: float = 0.0) -> str:
    """'same date of birth: strong; surname differs by one letter: moderate; ...', strongest first."""
    parts = []
    if household <= -0.5:
        parts.append((abs(household), f"could be another person of the same household: {strength(household)}"))
    for name, level in levels.items():
        if level == MISSING:
            continue
        words = BY_NAME[name].levels[level]
        if swapped and name in ("first_name", "last_name") and level <= 2:
            words += " (given name and surname swapped)"
        parts.append((abs(weights[name]), f"{words}: {strength(weights[name])}"))
    return "; ".join(text for _size, text in sorted(parts, key=lambda p: -p[0]))
