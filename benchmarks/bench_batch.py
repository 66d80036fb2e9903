"""Batch benchmark: `knnserve batch` on Fashion-MNIST (10k test rows, and 100k made by repeating them), each engine
beside the baseline measured in the same run: the model called in-process on the whole array.

Run from the repository root, under the shared lock (other people time things on this machine):

    flock /work/bench.lock .venv/bin/python benchmarks/bench_batch.py

Targets (issue 11): local engine >= 0.8x the baseline's rows/s; server engine (gRPC to a local server)
>= 0.5x the local engine; Ray Data with 2 actors: rows/s and start-up time reported beside local.
Every engine runs the job as the command does (``run_job``): bundle load, planning, reading the .npy,
classifying, writing Parquet parts and committing each shard. The baseline only classifies an
array already in memory with a model already loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from knnserve.batch import JobSpec, run_job
from knnserve.batch.engines.local import LocalEngine
from knnserve.batch.engines.ray_data import RayEngine
from knnserve.batch.engines.server import ServerEngine
from knnserve.data import load_dataset
from knnserve.index import set_num_threads
from knnserve.index.backend import build_info
from knnserve.machine import cpu_model, usable_cores
from knnserve.model import KNNModel
from servers import start_knnserve, stop

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Measured:
    """Repeated timings of one engine on one input."""

    engine: str
    rows: int
    seconds: list[float] = field(default_factory=list)
    extra: list[dict[str, object]] = field(default_factory=list)

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.median_s


def ensure_bundle(work: Path) -> Path:
    """The Fashion-MNIST Flat bundle (k=5, the default query), built once into WORK/models/fashion-mnist/1."""
    bundle = work / "models" / "fashion-mnist" / "1"
    if not (bundle / "manifest.json").is_file():
        ds = load_dataset("fashion-mnist", download=False)
        print(f"building {bundle} ...", flush=True)
        KNNModel.fit(ds.x_train, ds.y_train, class_names=ds.class_names, index="flat").save(bundle, name="fashion-mnist")
    return bundle


def ensure_inputs(work: Path) -> dict[str, Path]:
    """test10k.npy (the test split) and rep100k.npy (the test split ten times)."""
    ds = load_dataset("fashion-mnist", download=False)
    paths = {"10k": work / "test10k.npy", "100k": work / "rep100k.npy"}
    if not paths["10k"].is_file():
        np.save(paths["10k"], ds.x_test)
    if not paths["100k"].is_file():
        np.save(paths["100k"], np.concatenate([ds.x_test] * 10))
    return paths


def timed_job(spec: JobSpec, engine: object) -> tuple[float, dict[str, object]]:
    shutil.rmtree(spec.out, ignore_errors=True)
    started = time.perf_counter()
    summary = run_job(spec, engine)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    assert summary.errors == 0 and summary.run_rows == summary.rows
    return elapsed, summary.extra


def predictions(out: Path) -> np.ndarray:
    import pyarrow.parquet as pq

    return np.asarray(pq.read_table(out, columns=["prediction"]).column("prediction").to_numpy())


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/knnserve-bench-batch"), help="bundle, inputs and outputs")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the baseline, local and server runs (median)")
    parser.add_argument("--ray-repeats", type=int, default=2, help="repeats of the Ray runs (each starts its own local Ray)")
    parser.add_argument("--sizes", default="10k,100k")
    parser.add_argument("--shard-rows", type=int, default=2000, help="rows per shard, every engine (2000: the 10k input is 5 shards, "
                        "enough for 2 Ray actors)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / f"batch-{datetime.now(timezone.utc):%Y-%m-%d}.md")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    token = args.work / "ray-token"  # Ray >= 2.59 makes a token for a local cluster; keep it here, not in ~/.ray
    if not token.exists():
        token.write_text(os.urandom(16).hex())
    os.environ.setdefault("RAY_AUTH_TOKEN_PATH", str(token))
    bundle = ensure_bundle(args.work)
    inputs = ensure_inputs(args.work)
    sizes = args.sizes.split(",")
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load_before = load_average()
    set_num_threads(None)
    model = KNNModel.load(bundle)
    results: dict[str, dict[str, Measured]] = {size: {} for size in sizes}
    checks: list[str] = []
    server, target = start_knnserve("--models", str(args.work / "models"))
    try:
        for size in sizes:
            x = np.load(inputs[size])
            n = len(x)
            base, local, served = (Measured(name, n) for name in ("baseline", "local", "server"))
            expected = model.classify(x[:256]).predictions  # warm-up
            for repeat in range(args.repeats):
                print(f"{size} repeat {repeat + 1}/{args.repeats} (load {load_average()})", flush=True)
                t = time.perf_counter()
                expected = model.classify(x).predictions
                base.seconds.append(time.perf_counter() - t)
                spec = JobSpec(inputs=(str(inputs[size]),), out=args.work / "out" / f"local-{size}", progress=False,
                               shard_rows=args.shard_rows)
                seconds, extra = timed_job(spec, LocalEngine(bundle))
                local.seconds.append(seconds)
                local.extra.append(extra)
                spec = JobSpec(inputs=(str(inputs[size]),), out=args.work / "out" / f"server-{size}", progress=False,
                               shard_rows=args.shard_rows)
                seconds, extra = timed_job(spec, ServerEngine(target, "fashion-mnist"))
                served.seconds.append(seconds)
                served.extra.append(extra)
                print(f"  baseline {base.seconds[-1]:.2f} s, local {local.seconds[-1]:.2f} s, server {served.seconds[-1]:.2f} s", flush=True)
            same_local = bool(np.array_equal(predictions(args.work / "out" / f"local-{size}"), expected))
            same_server = bool(np.array_equal(predictions(args.work / "out" / f"server-{size}"), expected))
            checks.append(f"{size}: local engine predictions identical to the baseline's: {same_local}; server engine: {same_server}")
            results[size].update(baseline=base, local=local, server=served)
    finally:
        stop(server)
    del model
    for size in sizes:
        # Ray beside local: each Ray run right after a local run, so both see the same machine.
        ray_runs, beside = Measured("ray (2 actors)", results[size]["local"].rows), Measured("local, beside Ray", results[size]["local"].rows)
        for repeat in range(args.ray_repeats):
            print(f"{size} ray repeat {repeat + 1}/{args.ray_repeats} (load {load_average()})", flush=True)
            spec = JobSpec(inputs=(str(inputs[size]),), out=args.work / "out" / f"local-{size}", progress=False,
                           shard_rows=args.shard_rows)
            beside.seconds.append(timed_job(spec, LocalEngine(bundle))[0])
            spec = JobSpec(inputs=(str(inputs[size]),), out=args.work / "out" / f"ray-{size}", progress=False,
                           shard_rows=args.shard_rows)
            seconds, extra = timed_job(spec, RayEngine(bundle, actors=2))
            ray_runs.seconds.append(seconds)
            ray_runs.extra.append(extra)
            print(f"  local {beside.seconds[-1]:.2f} s, ray {seconds:.2f} s {extra}", flush=True)
        same = bool(np.array_equal(predictions(args.work / "out" / f"ray-{size}"), predictions(args.work / "out" / f"local-{size}")))
        checks.append(f"{size}: Ray engine predictions identical to the local engine's: {same}")
        results[size]["local_beside_ray"] = beside
        results[size]["ray"] = ray_runs
    report = render(results, checks, started_at, load_before, load_average())
    args.out.write_text(report)
    args.out.with_suffix(".json").write_text(json.dumps(
        {size: {name: {**asdict(m), "median_s": m.median_s, "rows_per_s": m.rows_per_s} for name, m in runs.items()}
         for size, runs in results.items()}, indent=1) + "\n")
    print(report)
    return 0


def render(results: dict[str, dict[str, Measured]], checks: list[str], started_at: str, load_before: str, load_after: str) -> str:
    import pyarrow
    import ray

    lines = [
        "# Batch benchmark: `knnserve batch` engines vs the model called in-process",
        "",
        "- command: `flock /work/bench.lock .venv/bin/python benchmarks/bench_batch.py`",
        f"- machine: {cpu_model()}, {usable_cores()} cores available, shared with other people's jobs; Python "
        f"{platform.python_version()}, faiss {build_info()['faiss']}, pyarrow {pyarrow.__version__}, ray {ray.__version__}, "
        f"{platform.system()} {platform.release()}",
        f"- date: {started_at}; load average (1, 5, 15 min) {load_before} before, {load_after} after",
        "- model: Fashion-MNIST, exact `Flat` (60k x 784, float32 storage), k = 5, uniform votes (the bundle's defaults)",
        "- inputs: `test10k.npy` (the 10k test images, uint8) and `rep100k.npy` (the same ten times); shards of 2,000 rows "
        "(`--shard-rows 2000`, so that the 10k input gives both Ray actors work); Parquet output, top-5 classes (the default, min(5, classes))",
        "- baseline: `KNNModel.classify(x)` on the whole array already in memory, model already loaded, FAISS threads = cores",
        "- engines: `run_job()` as `knnserve batch` runs it, timed from the call to the summary: bundle load (local, Ray), "
        "planning, reading, classifying, writing and committing every shard; interpreter start-up is not counted",
        "- server: `knnserve serve --models ...` with its defaults in a subprocess on the same 2 cores (batching on, "
        "FAISS threads = cores); the job uses `--in-flight 4 --request-rows 1024`",
        "- local engine: 2 search threads (one per core), each a single-threaded FAISS search of 1,024 rows at a time",
        "- Ray: a local Ray started by the job (`ray.init`), 2 actors x 0.5 CPU (1 search thread each), 1 CPU left "
        "for read tasks; start-up = `ray.init`; first shard = from the call until the first shard is committed",
        "",
        "| input | engine | runs | median s | rows/s | vs baseline | vs local |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for size, runs in results.items():
        base, local = runs["baseline"], runs["local"]
        for name, m in runs.items():
            lines.append(f"| {size} | {m.engine} | {len(m.seconds)} | {m.median_s:.2f} | {m.rows_per_s:.0f} | "
                         f"{m.rows_per_s / base.rows_per_s:.2f}x | {m.rows_per_s / local.rows_per_s:.2f}x |")
    lines += ["", "All timings (s): " + "; ".join(
        f"{size} {m.engine}: {', '.join(f'{s:.2f}' for s in m.seconds)}" for size, runs in results.items() for m in runs.values())]
    for size, runs in results.items():
        ray_runs = runs.get("ray")
        if ray_runs is not None:
            startups = [e.get("ray_startup_s") for e in ray_runs.extra]
            firsts = [e.get("first_shard_s") for e in ray_runs.extra]
            lines.append(f"- {size} Ray: start-up (ray.init) {startups} s; first shard committed after {firsts} s")
    lines += ["", "## Targets", "",
              "Ratios are medians of the ratios within each repeat (the runs of one repeat follow each other, so they see "
              "the same load from the machine's other users); the table's columns divide the medians.", ""]
    for size, runs in results.items():
        base, local, served = runs["baseline"], runs["local"], runs["server"]
        ratio_local = statistics.median(b / l for b, l in zip(base.seconds, local.seconds))
        ratio_server = statistics.median(l / s for l, s in zip(local.seconds, served.seconds))
        if "ray" in runs:
            ratio_ray = statistics.median(l / r for l, r in zip(runs["local_beside_ray"].seconds, runs["ray"].seconds))
            lines.append(f"- {size}: Ray Data (2 actors) {ratio_ray:.2f}x the local engine run just before it (no target: "
                         "the figure shows Ray's overhead on one machine)")
        lines.append(f"- {size}: local engine {ratio_local:.2f}x the baseline (target >= 0.8x: {'met' if ratio_local >= 0.8 else 'MISSED'}); "
                     f"server engine {ratio_server:.2f}x the local engine (target >= 0.5x: {'met' if ratio_server >= 0.5 else 'MISSED'})")
    lines += [f"- {check}" for check in checks] + [""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
