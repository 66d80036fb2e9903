"""Where a knnserve single query's time goes, beside the peer libraries' (issue 24's single-query row).

Builds one knnserve index (``KNNModel.fit``, as ``knnserve evaluate`` does) over Fashion-MNIST's raw pixels
or a bundle's embedding, then times single queries (one thread, the seeded subset ``knnserve evaluate``
uses) three ways at one search setting, interleaved query by query: ``KNNModel.search`` (what the harness
times), ``backend.search`` on the same index (FAISS's call with per-call parameters, no knnserve
validation) and ``index.search`` with the parameters object built once (FAISS alone). Then cProfile over
``KNNModel.search``. Run under the bench lock::

    flock /tmp/knnserve-bench.lock .venv/bin/python benchmarks/profile_peer_single.py --index hnsw --ef-search 48

or with ``--results RESULTS.json --recall 0.95`` (and ``--bundle`` for its space), at the setting where knnserve's
single-query QPS was best at that recall in that run.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time
from pathlib import Path

import numpy as np

from knnserve.data import load_dataset
from knnserve.evaluate.space import model_space
from knnserve.evaluate.workload import make_workload
from knnserve.index import backend, num_threads
from knnserve.model import KNNModel
from knnserve_client.wire.query import KnnQuery


def pick_from_results(args: argparse.Namespace) -> None:
    """Set ``args.index`` / ``ef_search`` / ``nprobe`` to knnserve's fastest single-query run reaching ``args.recall``."""
    import json

    results = json.loads(args.results.read_text())
    raw = args.bundle is None
    fit = [r for r in results["runs"] if r["system"] == "knnserve" and r["transport"] == "in-process" and r.get("single")
           and (r.get("recall") or 0) >= args.recall and (r["space"] == "raw") == raw
           and not str(r["index"].get("spec", "")).startswith("bundle ")]
    if not fit:
        raise SystemExit(f"no knnserve single-query run reaches recall {args.recall} in that space")
    best = max(fit, key=lambda r: r["single"]["qps"])
    args.index = best["index"]["spec"]
    args.ef_search, args.nprobe = best["params"].get("ef_search"), best["params"].get("nprobe")
    print(f"from {args.results}: {best['run_id']} {best['label']} recall {best['recall']:.4f}, "
          f"single {best['single']['qps']:,.0f} QPS in that run")


def main() -> None:
    """Build, time three ways, profile; print a markdown block."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", default="hnsw")
    parser.add_argument("--ef-search", type=int, default=None)
    parser.add_argument("--nprobe", type=int, default=None)
    parser.add_argument("--bundle", type=Path, default=None, help="search this bundle's embedding space instead of pixels")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--results", type=Path, default=None, help="take index and setting from this run's results.json")
    parser.add_argument("--recall", type=float, default=0.95, help="with --results: the recall@10 to reach (default: 0.95)")
    args = parser.parse_args()
    if args.results is not None:
        pick_from_results(args)

    dataset = load_dataset("fashion-mnist", download=False)
    workload = make_workload(dataset, seed=0)
    base, queries, space = workload.base, workload.queries, "raw pixels (784-d uint8)"
    if args.bundle is not None:
        embedded = model_space(KNNModel.load(args.bundle), workload, "bundle")
        base, queries, space = embedded.base, embedded.queries, embedded.description
    started = time.perf_counter()
    model = KNNModel.fit(base, workload.base_labels, class_names=workload.class_names, index=args.index, progress=False)
    model.warm_kernel()
    build = time.perf_counter() - started
    query = model.resolve(KnnQuery(k=10, ef_search=args.ef_search, nprobe=args.nprobe))
    prepared = model.prepare(queries)
    rows = workload.single_rows(args.queries)
    params = backend.search_parameters(model.index, nprobe=query.nprobe, ef_search=query.ef_search)

    def knnserve_call(i: int) -> None:
        model.search(prepared[i : i + 1], query)

    def backend_call(i: int) -> None:
        backend.search(model.index, prepared[i : i + 1], 10, nprobe=query.nprobe, ef_search=query.ef_search)

    def faiss_call(i: int) -> None:
        model.index.search(prepared[i : i + 1], 10, params=params)

    calls = {"KNNModel.search": knnserve_call, "backend.search": backend_call,
             "index.search (params built once)": faiss_call}
    times: dict[str, list[float]] = {name: [] for name in calls}
    with num_threads(1):
        for _ in range(args.repeats):
            for i in rows:
                for name, call in calls.items():
                    t = time.perf_counter()
                    call(int(i))
                    times[name].append(time.perf_counter() - t)
        profile = cProfile.Profile()
        profile.enable()
        for i in rows:
            knnserve_call(int(i))
        profile.disable()
    print(f"## {args.index} ({model.index_info.factory}, kernel {model.kernel_plan.name}) over {space}; "
          f"{query.set_fields()}; built in {build:.1f} s")
    print()
    print("| call | p50 µs | mean µs | QPS (1 / mean) |")
    print("|---|---|---|---|")
    for name, values in times.items():
        v = np.array(values) * 1e6
        print(f"| {name} | {np.percentile(v, 50):.1f} | {v.mean():.1f} | {1e6 / v.mean():,.0f} |")
    # cProfile's own print rounds to milliseconds; per query in µs is what matters here.
    stats = pstats.Stats(profile, stream=io.StringIO()).stats  # type: ignore[attr-defined]
    n = len(rows)
    print()
    print(f"cProfile of KNNModel.search over {n} single queries (its own overhead inflates the Python share), "
          "µs per query:")
    print()
    print("| function | calls per query | own µs | with callees µs |")
    print("|---|---|---|---|")
    top = sorted(stats.items(), key=lambda item: item[1][2], reverse=True)[:14]
    for (filename, line, name), (_, calls, own, total, _) in top:
        where = f"{Path(filename).name}:{line}({name})" if line else name
        print(f"| `{where}` | {calls / n:.1f} | {own / n * 1e6:.1f} | {total / n * 1e6:.1f} |")


if __name__ == "__main__":
    main()
