"""Find likely duplicate people within an upload and against earlier uploads (history).

Why: the same person re-requests a book with a typo in their name, a nickname,
their names swapped, a reformatted phone or a new e-mail. Spindle uses
probabilistic record linkage (Fellegi–Sunter, as splink does it; see
`linkage`): candidate pairs from several blocking rules, comparison levels per
field (`comparisons`), u from random pairs, m by EM on each upload, term
frequencies, and a match probability per pair.

`score` is that probability in percent. DEFAULT_THRESHOLD = 90: suggest a pair
when it is at least nine times as likely the same person as not. That is the
decision rule for a false merge costing nine times a missed duplicate (a false
duplicate can make someone's request vanish; a missed one costs a second
copy), not a number fitted to a benchmark. On FEBRL 1 and 2 precision and
recall are above 0.99 from 50 % to 99 % (benchmarks/bench_linkage.py).

Groups (`group`, `cluster_pairs`) join suggested pairs strongest first, and
two groups only when every member of one is more likely than not the same
person as every member of the other (`linkage.clusters`): one borderline pair
cannot chain two people's groups together. A suggested pair whose link was
split keeps its row with an empty group.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from streamlit_app.validation import linkage
from streamlit_app.validation.comparisons import COMPARISONS, MISSING
from streamlit_app.validation.linkage_fields import concat_fields, prepare_fields
from streamlit_app.validation.records import guess_columns, sheet_rows

DEFAULT_THRESHOLD = 90.0
MAX_BLOCK = linkage.MAX_BLOCK
FIELDS = tuple(c.name for c in COMPARISONS)
PAIR_COLUMNS = ["left_row", "right_row", "source", *FIELDS, "match_weight", "score", "group", "reasons"]


def find_duplicates(
    df: pd.DataFrame,
    history: pd.DataFrame | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    mapping: dict | None = None,
) -> pd.DataFrame:
    """Likely duplicate pairs (match probability ≥ threshold %), most certain first.

    left_row is the upload's sheet row (the 'row' index `read_sheet` sets,
    else position + 2, as under a header line); right_row is another sheet row
    (source 'upload') or the history record's `id` column, else its row
    (source 'history'). Per-field columns hold that comparison's match weight
    in bits (log2 of how much more likely the pair is one person; empty where
    a record lacks the field); match_weight is their sum with the prior;
    score the probability in percent; group numbers the upload's groups
    (members all match each other); reasons says it in words.
    """
    upload = prepare_fields(df, mapping)
    n_upload = len(df)
    left_ids = np.asarray(sheet_rows(df), dtype=object)
    ids = left_ids
    fields = upload
    if history is not None and len(history):
        past = prepare_fields(history, guess_columns(history))
        fields = concat_fields([upload, past])
        history_ids = (history["id"].to_numpy(dtype=object) if "id" in history.columns
                       else np.asarray(sheet_rows(history), dtype=object))
        ids = np.concatenate([left_ids, history_ids])
    if n_upload == 0:
        return pd.DataFrame(columns=PAIR_COLUMNS)
    i, j = linkage.candidate_pairs(fields, n_upload)
    levels, swapped = linkage.compare_in_chunks(fields, i, j)
    model = linkage.fit(fields, n_upload, levels)
    weights = linkage.weigh(model, levels, i)
    weight = weights.total
    keep = np.flatnonzero(100.0 * linkage.probability(weight) >= threshold)
    keep = keep[np.argsort(-weight[keep], kind="stable")]
    i, j = i[keep], j[keep]
    levels = {name: values[keep] for name, values in levels.items()}
    parts = {name: values[keep] for name, values in weights.parts.items()}
    weight, swapped, household = weight[keep], swapped[keep], weights.household[keep]

    within = j < n_upload
    groups = linkage.clusters([(int(a), int(b), float(w)) for a, b, w in zip(i[within], j[within], weight[within])],
                              lambda pairs: linkage.score(model, fields, np.array([p[0] for p in pairs]),
                                                          np.array([p[1] for p in pairs])))
    group_of = {member: number for number, group in enumerate(groups, start=1) for member in group}
    out: dict[str, object] = {
        "left_row": ids[i],
        "right_row": ids[j],
        "source": np.where(within, "upload", "history").astype(object),
    }
    for name in FIELDS:
        out[name] = pd.array(np.where(levels[name] == MISSING, np.nan, np.round(parts[name], 1)), dtype="Float64")
    out["match_weight"] = np.round(weight, 2)
    out["score"] = np.floor(1000.0 * linkage.probability(weight)) / 10.0  # 99.96 % shows as 99.9, not 100
    out["group"] = pd.array([group_of.get(int(a)) if w and group_of.get(int(a)) == group_of.get(int(b)) else None
                             for a, b, w in zip(i, j, within)], dtype="Int64")
    out["reasons"] = [
        linkage.explain({name: int(levels[name][k]) for name in FIELDS},
                        {name: float(parts[name][k]) for name in FIELDS}, bool(swapped[k]), float(household[k]))
        for k in range(len(i))
    ]
    return pd.DataFrame(out, columns=PAIR_COLUMNS)


def cluster_pairs(pairs: pd.DataFrame) -> list[list]:
    """Groups of upload rows that are one person.

    From find_duplicates' `group` column when present (members checked to
    match each other, no chaining); otherwise (e.g. pairs a person accepted)
    the pairs are joined transitively. Only 'upload' pairs count: a history
    match is shown as its own pair.
    """
    upload = pairs[pairs["source"] == "upload"] if "source" in pairs.columns else pairs
    if "group" in upload.columns:
        members: dict[int, set] = {}
        for a, b, group in zip(upload["left_row"].tolist(), upload["right_row"].tolist(), upload["group"].tolist()):
            if group is not None and group == group and group is not pd.NA:
                members.setdefault(int(group), set()).update((a, b))
        return sorted((sorted(g) for g in members.values() if len(g) > 1), key=lambda g: g[0])
    parent: dict = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(upload["left_row"].tolist(), upload["right_row"].tolist()):
        root_a, root_b = find(a), find(b)
        if root_a != root_b:
            parent[max(root_a, root_b)] = min(root_a, root_b)
    groups: dict = {}
    for node in parent:
        groups.setdefault(find(node), []).append(node)
    return sorted((sorted(g) for g in groups.values() if len(g) > 1), key=lambda g: g[0])
