"""Before/after on the same machine in the same run: the code of a base revision against the working tree.

Each side runs in its own processes with ``PYTHONPATH`` pointing at that side's ``server/`` and
``client/`` folders (the installed dependencies are shared), and the sides alternate round by round
(ABBA order), so the machine's load of the moment falls on both. Four probes:

* ``knn``: exact Flat k-NN (``KNNModel.fit(..., index="flat")``, then ``classify`` of the 10k
  Fashion-MNIST test rows, k=5) in a fresh process per side and round; seconds of the median of
  ``--repeats`` calls, and the predictions' checksum (both sides must agree).
* ``service``: ``knnserve serve`` of one bundle (built by the base side, so both can load it) from
  each side, and one-row Classify requests from ``--clients`` threads of this process (the working
  tree's client, the same for both servers) for ``--duration`` seconds; requests/s and latency.
* ``load``: ``KNNModel.load`` of the Flat Fashion-MNIST bundle (built by the base side) and
  ``warm_kernel`` (building the search kernel), in a fresh process per side and round: what a
  server, a batch job or a Ray actor pays before its first search.
* ``batch``: ``knnserve batch`` (local engine) on the 10k test rows into a new output folder, in a
  fresh process per side and round, shards of 2,000 rows: seconds from the process's first line to
  its end (imports included), the job alone (``run_job``, what ``bench_batch.py`` times), and the
  predictions' checksum (both sides must agree).

    flock /work/bench.lock .venv/bin/python benchmarks/ab_revisions.py --base 9228c57

The base revision is checked out with ``git worktree`` under ``--work-dir`` (left there for reuse).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from servers import running_knnserve

ROOT = Path(__file__).resolve().parent.parent

KNN_PROBE = """
import hashlib, json, sys, time
import numpy as np
import knnserve
from knnserve.data import load_dataset
from knnserve.model import KNNModel
assert knnserve.__file__.startswith(sys.argv[1]), knnserve.__file__
ds = load_dataset("fashion-mnist", download=False)
model = KNNModel.fit(ds.x_train, ds.y_train, class_names=ds.class_names, index="flat")
model.classify(ds.x_test[:64])
seconds = []
for _ in range(int(sys.argv[2])):
    started = time.perf_counter()
    predictions = model.classify(ds.x_test).predictions
    seconds.append(time.perf_counter() - started)
print(json.dumps({"seconds": float(np.median(seconds)), "accuracy": float(np.mean(predictions == ds.y_test)),
                  "checksum": hashlib.sha256(predictions.astype("<i8").tobytes()).hexdigest()[:16]}))
"""

LOAD_PROBE = """
import json, sys, time
started = time.perf_counter()
import knnserve
from knnserve.model import KNNModel
assert knnserve.__file__.startswith(sys.argv[1]), knnserve.__file__
imported = time.perf_counter()
model = KNNModel.load(sys.argv[2])
loaded = time.perf_counter()
model.warm_kernel()
warm = time.perf_counter()
print(json.dumps({"load_s": loaded - imported, "kernel_s": warm - loaded, "load_and_kernel_s": warm - imported,
                  "kernel": model.kernel_plan.name}))
"""

BATCH_PROBE = """
import json, shutil, sys, time
from pathlib import Path
started = time.perf_counter()
import hashlib
import knnserve
from knnserve.batch import JobSpec, run_job
from knnserve.batch.engines.local import LocalEngine
assert knnserve.__file__.startswith(sys.argv[1]), knnserve.__file__
imported = time.perf_counter()
out = Path(sys.argv[4])
shutil.rmtree(out, ignore_errors=True)
summary = run_job(JobSpec(inputs=(sys.argv[3],), out=out, progress=False, shard_rows=2000), LocalEngine(Path(sys.argv[2])))
done = time.perf_counter()
assert summary.errors == 0 and summary.run_rows == summary.rows == 10000
import pyarrow.parquet as pq
predictions = pq.read_table(out, columns=["prediction"]).column("prediction").to_numpy()
print(json.dumps({"job_s": done - imported, "process_s": done - started, "imports_s": imported - started,
                  "checksum": hashlib.sha256(predictions.astype("<i8").tobytes()).hexdigest()[:16]}))
"""

BUNDLE_PROBE = """
import sys
from knnserve.data import load_dataset
from knnserve.model import KNNModel
ds = load_dataset("fashion-mnist", download=False)
KNNModel.fit(ds.x_train, ds.y_train, class_names=ds.class_names, index=sys.argv[2]).save(sys.argv[1], name="ab")
"""


@dataclass(frozen=True)
class Side:
    """One side of the comparison: a name and the folder whose server/ and client/ it runs."""

    name: str
    root: Path

    def env(self) -> dict[str, str]:
        """The environment of this side's processes."""
        return {**os.environ, "PYTHONPATH": f"{self.root / 'server'}:{self.root / 'client'}", "OMP_WAIT_POLICY": "PASSIVE"}


def worktree(base: str, work: Path) -> Path:
    """A checkout of ``base`` (kept between runs)."""
    rev = subprocess.run(["git", "rev-parse", "--short", base], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    path = work / rev
    if not path.is_dir():
        work.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "worktree", "add", "--detach", str(path), rev], cwd=ROOT, check=True, capture_output=True)
    return path


def knn_round(side: Side, repeats: int) -> dict[str, float | str]:
    """One fresh process of the knn probe."""
    done = subprocess.run([sys.executable, "-c", KNN_PROBE, str(side.root), str(repeats)], env=side.env(),
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def probe_round(side: Side, probe: str, *args: str) -> dict[str, float | str]:
    """One fresh process of a probe; the side's process starts with its own interpreter, as a command would."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", probe, str(side.root), *args], env=side.env(), capture_output=True,
                          text=True, check=True)
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "wall_s": time.perf_counter() - started}


def load(target: str, x: np.ndarray, clients: int, warmup: float, duration: float) -> dict[str, float]:
    """One-row Classify from ``clients`` threads; completions inside the window after the warm-up."""
    from knnserve_client import Client

    begin = time.perf_counter() + warmup
    end = begin + duration
    done: list[list[tuple[float, float]]] = [[] for _ in range(clients)]

    def worker(i: int) -> None:
        with Client(target, timeout=30) as client:
            row = i
            while True:
                started = time.perf_counter()
                if started > end:
                    return
                client.classify("ab", x[row % len(x) : row % len(x) + 1], top_n=0)
                done[i].append((started, time.perf_counter()))
                row += clients

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    window = [e - s for calls in done for s, e in calls if begin <= e <= end]
    latencies = np.asarray(window) * 1e3
    return {"rps": len(window) / duration, "p50_ms": float(np.percentile(latencies, 50)), "p99_ms": float(np.percentile(latencies, 99))}


def service_round(side: Side, bundle: Path, x: np.ndarray, clients: list[int], warmup: float, duration: float) -> dict[str, dict[str, float]]:
    """One server process of one side, loaded at each client count."""
    with running_knnserve("--model", str(bundle), env=side.env(), what=f"{side.name} server") as (_, target):
        return {str(c): load(target, x, c, warmup, duration) for c in clients}


def ratio_lines(name: str, results: dict[str, list[float]], higher_is_better: bool) -> list[str]:
    base, head = float(np.median(results["base"])), float(np.median(results["head"]))
    better = head / base if higher_is_better else base / head
    per_round = ", ".join(f"{b:.3g}/{h:.3g}" for b, h in zip(results["base"], results["head"]))
    return [f"| {name} | {base:.4g} | {head:.4g} | {better:.3f}x | {per_round} |"]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision to compare the working tree with")
    parser.add_argument("--probes", nargs="+", choices=("knn", "service", "load", "batch"),
                        default=["knn", "service"])
    parser.add_argument("--rounds", type=int, default=4, help="rounds per probe (sides alternate ABBA)")
    parser.add_argument("--repeats", type=int, default=3, help="knn: classify calls per process (median)")
    parser.add_argument("--index", default="HNSW32", help="service: the bundle's index (default: HNSW32)")
    parser.add_argument("--clients", nargs="+", type=int, default=[1, 16])
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/knnserve-ab"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    sides = [Side("base", worktree(args.base, args.work_dir)), Side("head", ROOT)]
    order = [sides if r % 2 == 0 else sides[::-1] for r in range(args.rounds)]
    table: list[str] = []
    if "knn" in args.probes:
        seconds: dict[str, list[float]] = {"base": [], "head": []}
        checks: set[str] = set()
        for pair in order:
            for side in pair:
                result = knn_round(side, args.repeats)
                seconds[side.name].append(float(result["seconds"]))
                checks.add(f"{result['checksum']} ({float(result['accuracy']):.2%})")
                print(side.name, result, flush=True)
        table += ratio_lines("exact Flat k=5, 10k rows classified in-process (s)", seconds, higher_is_better=False)
        table.append(f"| predictions (sha256 prefix, accuracy), both sides | {' / '.join(sorted(checks))} | | | |")
    if "load" in args.probes or "batch" in args.probes:
        flat = args.work_dir / "bundle-flat"
        if not (flat / "manifest.json").is_file():
            subprocess.run([sys.executable, "-c", BUNDLE_PROBE, str(flat), "flat"], env=sides[0].env(), check=True)
    if "load" in args.probes:
        loads: dict[str, dict[str, list[float]]] = {}
        kernels: set[str] = set()
        for pair in order:
            for side in pair:
                result = probe_round(side, LOAD_PROBE, str(flat))
                kernels.add(str(result["kernel"]))
                for metric in ("load_s", "kernel_s", "load_and_kernel_s"):
                    loads.setdefault(metric, {"base": [], "head": []})[side.name].append(float(result[metric]))
                print(side.name, result, flush=True)
        for metric, values in loads.items():
            table += ratio_lines(f"Flat Fashion-MNIST bundle, fresh process: {metric}", values, higher_is_better=False)
        table.append(f"| kernel planned, both sides | {' / '.join(sorted(kernels))} | | | |")
    if "batch" in args.probes:
        from knnserve.data import load_dataset

        rows = args.work_dir / "test10k.npy"
        if not rows.is_file():
            np.save(rows, load_dataset("fashion-mnist", download=False).x_test)
        jobs: dict[str, dict[str, list[float]]] = {}
        sums: set[str] = set()
        for pair in order:
            for side in pair:
                result = probe_round(side, BATCH_PROBE, str(flat), str(rows), str(args.work_dir / f"batch-out-{side.name}"))
                sums.add(str(result["checksum"]))
                for metric in ("job_s", "imports_s", "process_s", "wall_s"):
                    jobs.setdefault(metric, {"base": [], "head": []})[side.name].append(float(result[metric]))
                print(side.name, result, flush=True)
        for metric, values in jobs.items():
            table += ratio_lines(f"knnserve batch, local, 10k rows, fresh process: {metric}", values, higher_is_better=False)
        table.append(f"| batch predictions (sha256 prefix), both sides | {' / '.join(sorted(sums))} | | | |")
    if "service" in args.probes:
        from knnserve.data import load_dataset

        bundle = args.work_dir / f"bundle-{args.index.lower().replace(',', '-')}"
        if not (bundle / "manifest.json").is_file():
            subprocess.run([sys.executable, "-c", BUNDLE_PROBE, str(bundle), args.index], env=sides[0].env(), check=True)
        x = load_dataset("fashion-mnist", download=False).x_test
        measured: dict[str, dict[str, list[float]]] = {}
        for pair in order:
            for side in pair:
                for clients, result in service_round(side, bundle, x, args.clients, args.warmup, args.duration).items():
                    for metric, value in result.items():
                        measured.setdefault(f"{clients}|{metric}", {"base": [], "head": []})[side.name].append(value)
                print(side.name, {k: v[side.name][-1] for k, v in measured.items()}, flush=True)
        for key, values in measured.items():
            clients, metric = key.split("|")
            table += ratio_lines(f"{args.index} served, {clients} one-row clients: {metric}", values, higher_is_better=metric == "rps")
    from knnserve.machine import cpu_model, usable_cores

    stamp = datetime.now(timezone.utc)
    text = "\n".join([
        f"# Before/after: {args.base} vs the working tree ({stamp:%Y-%m-%d})",
        "",
        f"- command: `flock /work/bench.lock .venv/bin/python benchmarks/ab_revisions.py {' '.join(sys.argv[1:])}`",
        f"- machine: {cpu_model()}, {usable_cores()} cores; date {stamp:%Y-%m-%d %H:%M} UTC; load average at the end "
        f"{'/'.join(f'{v:.2f}' for v in os.getloadavg())}",
        f"- {args.rounds} rounds, sides alternating ABBA; each figure is the median over rounds; 'after vs before' > 1 "
        "means the working tree is faster",
        "- service: the server of each side in its own process, the load from threads of the measuring process "
        "(the working tree's client for both), sharing the cores",
        "",
        "| figure | before (base) | after (working tree) | after vs before | per round (before/after) |",
        "|---|---:|---:|---:|---|",
        *table,
        "",
    ])
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
