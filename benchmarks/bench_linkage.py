"""Duplicate finding: probabilistic linkage (new) vs the weighted score (old) vs a plain rapidfuzz baseline.

Run: python -m benchmarks.bench_linkage [febrl] [speed]

- febrl: FEBRL 1 and 2 (../shared/data/febrl, when present), uploaded with their
  own headers and with conventional ones (first_name, last_name, address,
  address2, city, state, zip, dob as MM/DD/YYYY, ssn): precision, recall, F1 and
  time per method, and blocking recall (share of true pairs that blocking keeps).
  Goal: F1 >= 0.99 with precision >= 0.99 for the new method on each.
- speed: 5,000 records (goal <= 1 s) and 100k uploads against 100k history
  (goal <= 30 s and <= 1 GB peak RSS), on `sample_data.labelled_duplicate_set`.

The baseline is the textbook deterministic approach: blocking on soundex of
either name, postcode and date of birth; Jaro–Winkler for names and town,
token-set ratio for the street line, exact postcode/date/identifier; the mean
over the fields both records have, one threshold chosen for the best F1 on
FEBRL 2 and used on both sets. The old method is the previous
`duplicates.find_duplicates` (benchmarks/duplicates_v1.py) at its default 78.
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FEBRL_DIR = Path(os.environ.get("SPINDLE_FEBRL_DIR", ROOT.parent / "shared" / "data" / "febrl"))


# --------------------------------------------------------------------------- data

def load_febrl(name: str) -> tuple[pd.DataFrame, set[tuple[int, int]]]:
    """The set with sheet-like rows (2, 3, ...) and its true pairs as (row, row)."""
    df = pd.read_csv(FEBRL_DIR / f"{name}.csv", dtype=str, keep_default_na=False)
    df.index = pd.RangeIndex(2, len(df) + 2, name="row")
    truth_ids = pd.read_csv(FEBRL_DIR / f"{name}_true_pairs.csv", dtype=str)
    row_of = dict(zip(df["rec_id"], df.index))
    pairs = zip(truth_ids["rec_id_1"], truth_ids["rec_id_2"])
    truth = {tuple(sorted((int(row_of[a]), int(row_of[b])))) for a, b in pairs}
    return df, truth  # type: ignore[return-value]


def conventional_headers(df: pd.DataFrame) -> pd.DataFrame:
    """The same people as a typical US sheet: house number and street in one column, dates as MM/DD/YYYY."""
    dob = df["date_of_birth"].str.replace(r"^(\d{4})(\d{2})(\d{2})$", r"\2/\3/\1", regex=True)
    out = pd.DataFrame({
        "first_name": df["given_name"], "last_name": df["surname"],
        "address": (df["street_number"] + " " + df["address_1"]).str.strip(), "address2": df["address_2"],
        "city": df["suburb"], "state": df["state"].str.upper(), "zip": df["postcode"], "dob": dob,
        "ssn": df["soc_sec_id"],
    })
    out.index = df.index
    return out


def scores(found: set[tuple[int, int]], truth: set[tuple[int, int]]) -> dict[str, float]:
    hits = len(found & truth)
    precision = hits / len(found) if found else 1.0
    recall = hits / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def _pairs(frame: pd.DataFrame, threshold: float | None = None) -> set[tuple[int, int]]:
    keep = frame if threshold is None else frame[frame["score"] >= threshold]
    return {(min(int(a), int(b)), max(int(a), int(b))) for a, b in zip(keep["left_row"], keep["right_row"])}


# --------------------------------------------------------------------------- methods

def new_method(df: pd.DataFrame) -> set[tuple[int, int]]:
    from streamlit_app.validation.duplicates import find_duplicates

    return _pairs(find_duplicates(df))


def old_method(df: pd.DataFrame) -> set[tuple[int, int]]:
    from benchmarks.duplicates_v1 import find_duplicates

    return _pairs(find_duplicates(df))


def baseline_scores(df: pd.DataFrame) -> pd.DataFrame:
    """Plain blocking + rapidfuzz: (left_row, right_row, score 0-1) for every candidate pair."""
    import jellyfish
    from rapidfuzz import fuzz, process
    from rapidfuzz.distance import JaroWinkler

    from streamlit_app.validation.linkage_fields import prepare_fields

    fields = prepare_fields(df)
    n = len(df)
    sound_first = np.array([jellyfish.soundex(v) if v else "" for v in fields["first"]], dtype=object)
    sound_last = np.array([jellyfish.soundex(v) if v else "" for v in fields["last"]], dtype=object)
    found = []
    for keys in (sound_first, sound_last, fields["zip"], fields["dob"]):
        frame = pd.DataFrame({"key": keys, "i": np.arange(n)})
        frame = frame[frame["key"] != ""]
        merged = frame.merge(frame, on="key")
        merged = merged[merged["i_x"] < merged["i_y"]]
        found.append(merged["i_x"].to_numpy() * n + merged["i_y"].to_numpy())
    codes = np.unique(np.concatenate(found))
    i, j = codes // n, codes % n
    total, count = np.zeros(len(i)), np.zeros(len(i))

    def add(field: str, values: np.ndarray) -> None:
        both = (fields[field][i] != "") & (fields[field][j] != "")
        total[both] += values[both]
        count[both] += 1

    for field in ("first", "last", "city"):
        add(field, process.cpdist(fields[field][i], fields[field][j], scorer=JaroWinkler.normalized_similarity,
                                  workers=-1))
    add("street", process.cpdist(fields["street"][i], fields["street"][j], scorer=fuzz.token_set_ratio,
                                 workers=-1) / 100)
    for field in ("zip", "dob", "identifier", "phone", "email"):
        add(field, (fields[field][i] == fields[field][j]).astype(float))
    rows = np.asarray(df.index)
    return pd.DataFrame({"left_row": rows[i], "right_row": rows[j], "score": total / np.maximum(count, 1)})


def _best_threshold(frame: pd.DataFrame, truth: set[tuple[int, int]]) -> float:
    best, best_f1 = 0.5, -1.0
    for threshold in np.arange(0.5, 0.99, 0.01):
        f1 = scores(_pairs(frame, threshold), truth)["f1"]
        if f1 > best_f1:
            best, best_f1 = float(threshold), f1
    return round(best, 2)


# --------------------------------------------------------------------------- benchmarks

def _timed(method: Callable[[pd.DataFrame], set], df: pd.DataFrame) -> tuple[set, float]:
    start = time.perf_counter()
    found = method(df)
    return found, time.perf_counter() - start


def bench_febrl() -> list[dict]:
    """Every method on FEBRL 1 and 2, with their own and with conventional headers."""
    from streamlit_app.validation import linkage
    from streamlit_app.validation.linkage_fields import prepare_fields

    if not (FEBRL_DIR / "febrl1.csv").exists():
        print(f"FEBRL not found at {FEBRL_DIR}: skipped")
        return []
    sets = {name: load_febrl(name) for name in ("febrl1", "febrl2")}
    baseline_frames = {(name, headers): baseline_scores(df if headers == "own" else conventional_headers(df))
                       for name, (df, _truth) in sets.items() for headers in ("own", "conventional")}
    threshold = _best_threshold(baseline_frames[("febrl2", "own")], sets["febrl2"][1])
    rows = []
    for name, (df, truth) in sets.items():
        for headers in ("own", "conventional"):
            sheet = df if headers == "own" else conventional_headers(df)
            fields = prepare_fields(sheet)
            width = len(sheet)
            kept = linkage.candidate_pairs(fields, width)
            rows_of = np.asarray(sheet.index)
            candidates = {(int(rows_of[a]), int(rows_of[b])) for a, b in zip(*kept)}
            block_recall = len(candidates & truth) / len(truth)
            for method, run in (("new", new_method), ("old", old_method)):
                found, seconds = _timed(run, sheet)
                rows.append({"set": name, "headers": headers, "method": method, **scores(found, truth),
                             "seconds": round(seconds, 2),
                             "blocking_recall": round(block_recall, 4) if method == "new" else None,
                             "candidates": len(candidates) if method == "new" else None})
            start = time.perf_counter()
            frame = baseline_scores(sheet)
            seconds = time.perf_counter() - start
            rows.append({"set": name, "headers": headers, "method": f"baseline@{threshold}",
                         **scores(_pairs(frame, threshold), truth), "seconds": round(seconds, 2),
                         "blocking_recall": None, "candidates": len(frame)})
    print(f"{'set':7} {'headers':12} {'method':14} {'P':>6} {'R':>6} {'F1':>6} {'time s':>7} {'block R':>8} "
          f"{'cands':>6}  goal F1>=0.99, P>=0.99")
    for row in rows:
        met = row["f1"] >= 0.99 and row["precision"] >= 0.99
        goal = "" if row["method"] != "new" else ("  ok" if met else "  MISSED")
        block = f"{row['blocking_recall']:.4f}" if row["blocking_recall"] is not None else "-"
        print(f"{row['set']:7} {row['headers']:12} {row['method']:14} {row['precision']:6.3f} {row['recall']:6.3f} "
              f"{row['f1']:6.3f} {row['seconds']:7.2f} {block:>8} {row['candidates'] or '-':>6}{goal}")
    return rows


def bench_speed(small_n: int = 5000, big_n: int = 100_000) -> dict:
    """5k records within an upload; big_n uploads against big_n history: time, peak RSS, candidates, P/R."""
    import psutil

    from benchmarks.bench_validation import _PeakSampler
    from streamlit_app.validation.duplicates import find_duplicates
    from streamlit_app.validation.sample_data import labelled_duplicate_set

    figures: dict = {}
    df, truth = labelled_duplicate_set(small_n, 0.1, 7)
    find_duplicates(df.iloc[:200])  # imports and first-call costs are not the 5k figure
    start, cpu = time.perf_counter(), time.process_time()
    pairs = find_duplicates(df)
    figures["small_seconds"] = round(time.perf_counter() - start, 2)
    figures["small_cpu_seconds"] = round(time.process_time() - cpu, 2)
    figures.update({f"small_{k}": v for k, v in scores(_pairs(pairs), truth).items()})
    start = time.perf_counter()
    old = old_method(df)
    figures["small_old_seconds"] = round(time.perf_counter() - start, 2)
    figures.update({f"small_old_{k}": v for k, v in scores(old, truth).items()})
    print(f"{small_n:,} records: new {figures['small_seconds']} s (goal <= 1 s, ratio {figures['small_seconds']:.2f}; "
          f"CPU {figures['small_cpu_seconds']} s, all threads) "
          f"P {figures['small_precision']} R {figures['small_recall']}; old {figures['small_old_seconds']} s "
          f"P {figures['small_old_precision']} R {figures['small_old_recall']}")

    everything, truth = labelled_duplicate_set(2 * big_n, 0.1, 3)
    upload = everything.iloc[:big_n]
    history = everything.iloc[big_n:].reset_index().rename(columns={"row": "id"})
    last_upload_row = int(upload.index[-1])
    relevant = {pair for pair in truth if pair[0] <= last_upload_row}
    rss_before = psutil.Process().memory_info().rss
    with _PeakSampler() as sampler:
        start, cpu = time.perf_counter(), time.process_time()
        pairs = find_duplicates(upload, history)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak = max(sampler.peak, rss_before)
    figures.update({"big_seconds": round(seconds, 1), "big_cpu_seconds": round(cpu, 1),
                    "big_peak_rss_mb": round(peak / 2**20),
                    "big_data_rss_mb": round(rss_before / 2**20), "big_pairs": len(pairs),
                    **{f"big_{k}": v for k, v in scores(_pairs(pairs), relevant).items()}})
    print(f"{big_n:,} vs {big_n:,} history: {figures['big_seconds']} s (goal <= 30 s, ratio {seconds / 30:.2f}; "
          f"CPU {figures['big_cpu_seconds']} s, all threads; load average {os.getloadavg()[0]:.1f}), "
          f"peak RSS {figures['big_peak_rss_mb']} MB (goal <= 1024 MB, ratio {peak / 2**30:.2f}; before "
          f"{figures['big_data_rss_mb']} MB), P {figures['big_precision']} R {figures['big_recall']}")

    from benchmarks.duplicates_v1 import find_duplicates as old_find_duplicates

    start, old_cpu = time.perf_counter(), time.process_time()
    old_pairs = old_find_duplicates(upload, history)
    old_seconds, old_cpu = time.perf_counter() - start, time.process_time() - old_cpu
    figures.update({"big_old_seconds": round(old_seconds, 1), "big_old_cpu_seconds": round(old_cpu, 1),
                    **{f"big_old_{k}": v for k, v in scores(_pairs(old_pairs), relevant).items()}})
    print(f"  same run, old method: {figures['big_old_seconds']} s, CPU {figures['big_old_cpu_seconds']} s "
          f"(new/old CPU ratio {cpu / max(old_cpu, 1e-9):.2f}), P {figures['big_old_precision']} "
          f"R {figures['big_old_recall']}")
    return figures


def main(argv: list[str] | None = None) -> None:
    which = (sys.argv[1:] if argv is None else argv) or ["febrl", "speed"]
    if "febrl" in which:
        bench_febrl()
    if "speed" in which:
        bench_speed()


if __name__ == "__main__":
    main()
