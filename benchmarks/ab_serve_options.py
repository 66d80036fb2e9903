"""``serve`` options against each other on the same code: one-client round trip p50 and 16-client throughput and
server CPU per request, on the digits and the Fashion-MNIST HNSW32 bundles, rounds alternating, medians.

    flock /tmp/knnserve-bench.lock .venv/bin/python benchmarks/ab_serve_options.py \\
        "--event-loop asyncio" "--event-loop uvloop"

Each argument is one configuration (serve options, split on spaces). The bundles are bench_service.py's
(built there first: ``bench_service.py --sections hnsw latency`` makes both).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ab_revisions import Side  # noqa: E402
from bench_service import ROOT, Figure, LoadShape, classify_kind, ensure_bundle, knnserve, measure  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("configs", nargs="+", help="serve options of one configuration, e.g. '--event-loop asyncio'")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/knnserve-bench-service"))
    args = parser.parse_args()

    from knnserve.data import load_dataset

    head = Side("head", ROOT)
    data = {name: (ensure_bundle(args.work_dir, name, "HNSW32", head), load_dataset(name, download=False).x_test)
            for name in ("digits", "fashion-mnist")}
    one, many = LoadShape(1, 1, 1.0, args.duration), LoadShape(16, 4, 1.0, args.duration)
    results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    configs = [config.split() for config in args.configs]
    for round_number in range(args.rounds):
        for extra in configs if round_number % 2 == 0 else configs[::-1]:
            for name, (bundle, x) in data.items():
                lone, crowd = Figure(), Figure()
                with knnserve(head, bundle, *extra) as (process, target):
                    measure(process.pid, target, x, classify_kind(1), one, lone)
                    measure(process.pid, target, x, classify_kind(16), many, crowd)
                row = (lone.median("p50_ms"), crowd.median("rps"), crowd.median("cpu_ms"))
                results.setdefault((" ".join(extra), name), []).append(row)
                print(f"{' '.join(extra)} | {name} | 1 client p50 {row[0]:.3f} ms | 16 clients {row[1]:.0f} requests/s, "
                      f"server CPU {row[2]:.3f} ms per request", flush=True)
    print("\n| configuration | bundle | 1 client p50 ms | 16 clients requests/s | server CPU ms / request |")
    print("|---|---|---:|---:|---:|")
    for (config, name), rows in results.items():
        medians = [statistics.median(row[i] for row in rows) for i in range(3)]
        print(f"| {config} | {name} | {medians[0]:.3f} | {medians[1]:.0f} | {medians[2]:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
