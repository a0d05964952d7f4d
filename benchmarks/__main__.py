"""`make bench`: every benchmark, side by side in one run, printing ratios against their goals."""
from __future__ import annotations

import importlib
import sys

MODULES = ["benchmarks.bench_engine", "benchmarks.bench_store", "benchmarks.bench_queue", "benchmarks.bench_validation",
           "benchmarks.bench_linkage",
           "benchmarks.bench_media", "benchmarks.bench_dask", "benchmarks.bench_browser", "benchmarks.bench_intake",
           "benchmarks.bench_quality"]


def main() -> int:
    wanted = sys.argv[1:] or MODULES  # e.g. `python -m benchmarks bench_engine bench_store`
    for name in wanted:
        name = name if name.startswith("benchmarks.") else f"benchmarks.{name}"
        print(f"\n=== {name} ===", flush=True)
        module = importlib.import_module(name)
        sys.argv = [name]  # each benchmark reads its own options from argv: run it with its defaults
        module.main()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
