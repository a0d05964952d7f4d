"""Validation benchmarks: geocoding rate and the threshold table of duplicate finding.

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
                    thresholds: tuple[float, ...] = (50, 80, 90, 95, 99, 99.9),
                    drop: tuple[str, ...] = ()) -> dict:
    """Mean precision/recall per threshold (match probability, %) over seeded labelled sets."""
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

    def __enter__(self) -> _PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


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
    # duplicate finding (FEBRL, speed, memory) is benchmarks/bench_linkage.py; "duplicates" here is its speed part
    which = (sys.argv[1:] if argv is None else argv) or ["geocoding"]
    if "threshold" in which:
        for drop in ((), ("dob",), ("email",), ("dob", "email")):
            print("columns dropped:", drop or "none")
            for t, pr in threshold_table(drop=drop).items():
                print(f"  {t:>5}: precision {pr['precision']:.3f} recall {pr['recall']:.3f}")
    if "geocoding" in which:
        bench_geocoding()
    if "duplicates" in which:
        from benchmarks.bench_linkage import bench_speed

        bench_speed()


if __name__ == "__main__":
    main()
