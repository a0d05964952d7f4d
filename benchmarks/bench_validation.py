"""Validation benchmarks: duplicate finding (speed, memory, precision/recall) and geocoding rate.

Run: python -m benchmarks.bench_validation [duplicates|geocoding|threshold]
Figures vary ±30 % on the shared 2-core machine; ratios (achieved/configured
rate, precision, recall) are the stable part.
"""
from __future__ import annotations

import resource
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from streamlit_app.validation.phones import check_phone  # noqa: E402  (workers import only this)


def phone_workload(numbers: list[str], default_region: str = "US") -> list[dict]:
    """The per-item phone check over a list (for the lead's parallel benchmark: map check_phone)."""
    return [check_phone(number, default_region) for number in numbers]


def precision_recall(pairs, truth: set[tuple[int, int]], threshold: float,
                     relevant: set[tuple[int, int]] | None = None) -> tuple[float, float]:
    """Precision and recall of found pairs (score >= threshold) against true (row, row) pairs."""
    relevant = truth if relevant is None else relevant
    found = {
        (min(a, b), max(a, b))
        for a, b, score in zip(pairs["left_row"], pairs["right_row"], pairs["score"])
        if score >= threshold
    }
    hits = len(found & relevant)
    precision = hits / len(found) if found else 1.0
    recall = hits / len(relevant) if relevant else 1.0
    return precision, recall


def threshold_table(n: int = 5000, seeds: tuple[int, ...] = (7, 8, 9),
                    thresholds: tuple[float, ...] = (65, 70, 75, 78, 80, 85, 90),
                    drop: tuple[str, ...] = ()) -> dict:
    """Mean precision/recall per threshold over seeded labelled sets (how DEFAULT_THRESHOLD was chosen)."""
    from streamlit_app.validation.duplicates import find_duplicates
    from streamlit_app.validation.sample_data import labelled_duplicate_set

    sums = {t: [0.0, 0.0] for t in thresholds}
    for seed in seeds:
        df, truth = labelled_duplicate_set(n, 0.1, seed)
        pairs = find_duplicates(df.drop(columns=list(drop)), threshold=min(thresholds))
        for t in thresholds:
            p, r = precision_recall(pairs, truth, t)
            sums[t][0] += p / len(seeds)
            sums[t][1] += r / len(seeds)
    return {t: {"precision": round(p, 4), "recall": round(r, 4)} for t, (p, r) in sums.items()}


def _peak_rss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _PeakSampler:
    """Samples RSS every 50 ms, so the peak of one phase can be told apart from earlier phases."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        process = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, process.memory_info().rss)
            self._stop.wait(0.05)

    def __enter__(self) -> "_PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def bench_duplicates(small_n: int = 5000, big_n: int = 100_000) -> dict:
    """Scoring time for small_n records; big_n uploads vs big_n history: time, peak RSS, precision/recall."""
    import psutil

    from streamlit_app.validation.duplicates import DEFAULT_THRESHOLD, find_duplicates
    from streamlit_app.validation.sample_data import labelled_duplicate_set

    figures: dict = {"threshold": DEFAULT_THRESHOLD}
    df, truth = labelled_duplicate_set(small_n, 0.1, 7)
    start = time.perf_counter()
    pairs = find_duplicates(df)
    figures["small_n"] = small_n
    figures["small_seconds"] = round(time.perf_counter() - start, 2)
    figures["small_precision"], figures["small_recall"] = (round(x, 4) for x in precision_recall(pairs, truth, DEFAULT_THRESHOLD))
    print(f"duplicates {small_n:,} records: {figures['small_seconds']} s, precision {figures['small_precision']}, "
          f"recall {figures['small_recall']} at threshold {DEFAULT_THRESHOLD}")

    everything, truth = labelled_duplicate_set(2 * big_n, 0.1, 3)
    upload = everything.iloc[:big_n]
    history = everything.iloc[big_n:].reset_index().rename(columns={"row": "id"})
    last_upload_row = int(upload.index[-1])
    relevant = {pair for pair in truth if pair[0] <= last_upload_row}  # at least one side in the upload
    rss_before = psutil.Process().memory_info().rss
    with _PeakSampler() as sampler:
        start = time.perf_counter()
        pairs = find_duplicates(upload, history)
        seconds = time.perf_counter() - start
    precision, recall = precision_recall(pairs, truth, DEFAULT_THRESHOLD, relevant)
    figures.update({
        "big_n": big_n,
        "big_seconds": round(seconds, 1),
        "big_pairs_found": len(pairs),
        "big_rss_before_mb": round(rss_before / 2**20),
        "big_peak_rss_mb": round(max(sampler.peak, rss_before) / 2**20),
        "big_peak_extra_mb": round((max(sampler.peak, rss_before) - rss_before) / 2**20),
        "process_peak_rss_mb": round(_peak_rss_mb()),
        "big_precision": round(precision, 4),
        "big_recall": round(recall, 4),
    })
    print(f"duplicates {big_n:,} vs {big_n:,} history: {figures['big_seconds']} s (budget 60 s, ratio "
          f"{seconds / 60:.2f}), peak RSS {figures['big_peak_rss_mb']} MB (budget 1024 MB; data alone "
          f"{figures['big_rss_before_mb']} MB), precision {figures['big_precision']}, recall {figures['big_recall']}")
    return figures


def bench_geocoding(rate: float = 50.0, requests: int = 250, threads: int = 8) -> dict:
    """Geocode through the shared limiter at `rate` q/s with `threads` threads against the local fake API."""
    from concurrent.futures import ThreadPoolExecutor

    from streamlit_app.validation.geocoding import geocode_address, make_client
    from tests.fixtures.geocode_server import TEST_API_KEY, GeocodeServer, ServerConfig
    from utils.rate_limiter import RateLimiter

    addresses = [f"{n} Main St, Springfield, IL 62701" for n in range(1, requests + 1)]
    with GeocodeServer(ServerConfig(answer_all=True)) as server:
        client = make_client(TEST_API_KEY, server.base_url, timeout=5)
        limiter = RateLimiter(rate)
        start = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            results = list(pool.map(lambda a: geocode_address(a, client, limiter), addresses))
        seconds = time.perf_counter() - start
        arrivals = server.arrival_times()
    achieved = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    figures = {
        "configured_qps": rate,
        "achieved_qps": round(achieved, 2),
        "ratio": round(achieved / rate, 4),
        "requests": len(arrivals),
        "ok": sum(r["status"] == "ok" for r in results),
        "seconds": round(seconds, 2),
        "threads": threads,
    }
    print(f"geocoding: configured {rate} q/s, achieved {figures['achieved_qps']} q/s at the server "
          f"(ratio {figures['ratio']}), {figures['ok']}/{requests} ok, {threads} threads, {figures['seconds']} s")
    return figures


def main(argv: list[str] | None = None) -> None:
    which = (sys.argv[1:] if argv is None else argv) or ["geocoding", "duplicates"]
    if "threshold" in which:
        for drop in ((), ("dob",), ("email",), ("dob", "email")):
            print("columns dropped:", drop or "none")
            for t, pr in threshold_table(drop=drop).items():
                print(f"  {t:>5}: precision {pr['precision']:.3f} recall {pr['recall']:.3f}")
    if "geocoding" in which:
        bench_geocoding()
    if "duplicates" in which:
        bench_duplicates()


if __name__ == "__main__":
    main()
