"""Service benchmark: 1-row Classify requests from 1/4/16/64 concurrent clients, dynamic batching on
and off, against in-process search of the same rows measured in the same run.

Run from the repository root, under the shared lock (other agents time things on this machine):

    flock /work/bench.lock .venv/bin/python benchmarks/bench_service.py

The server runs in a subprocess (``knnserve serve``), the load generator in this process (one
Client, i.e. one channel, per simulated client thread). Both share the machine's cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from knnserve.data import load_dataset
from knnserve.index import set_num_threads
from knnserve.index.backend import DEFAULT_BLAS_THRESHOLD, build_info, set_blas_threshold
from knnserve.model import KNNModel
from knnserve_client import Client

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Row:
    """One measured configuration."""

    index: str
    mode: str  # "in-process batched", "in-process single", "server batching on/off"
    clients: int
    qps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    requests: int


def percentiles(latencies: list[float] | np.ndarray) -> tuple[float, float, float]:
    values = np.asarray(latencies) * 1e3
    return tuple(float(np.percentile(values, q)) for q in (50, 95, 99))  # type: ignore[return-value]


def ensure_bundle(work: Path, dataset, spec: str) -> Path:  # type: ignore[no-untyped-def]
    name = "fmnist-" + "".join(c for c in spec.lower() if c.isalnum())
    path = work / name / "1"
    if not (path / "manifest.json").is_file():
        print(f"building {spec} bundle in {path} ...", flush=True)
        started = time.perf_counter()
        model = KNNModel.fit(dataset.x_train, dataset.y_train, class_names=dataset.class_names, index=spec, storage="float32")
        model.save(path, name=name)
        print(f"  built in {time.perf_counter() - started:.1f} s", flush=True)
    return path


def in_process(model: KNNModel, x: np.ndarray, *, batched_rows: int, single_rows: int, repeats: int) -> list[Row]:
    """Batched: one classify() over batched_rows rows (median of repeats), with 1 FAISS thread and with
    one per core. Single: one row per call (1 thread; one row uses one thread anyway)."""
    spec = model.index_info.factory
    model.classify(x[:64])  # warm up
    rows = []
    for threads in sorted({1, len(os.sched_getaffinity(0))}):
        set_num_threads(threads)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            model.classify(x[:batched_rows])
            times.append(time.perf_counter() - started)
        batched = float(np.median(times))
        rows.append(Row(spec, f"in-process batched, all {batched_rows} rows in one call, {threads} FAISS thread(s)", 1,
                        batched_rows / batched, batched * 1e3, batched * 1e3, batched * 1e3, repeats))
        # The best a server can do when 16 clients each send one row: batches of 16.
        calls = []
        for start in range(0, batched_rows, 16):
            started = time.perf_counter()
            model.classify(x[start : start + 16])
            calls.append(time.perf_counter() - started)
        p50, p95, p99 = percentiles(calls)
        rows.append(Row(spec, f"in-process batched, 16 rows per call, {threads} FAISS thread(s)", 1,
                        batched_rows / float(np.sum(calls)), p50, p95, p99, len(calls)))
    for threads in sorted({1, len(os.sched_getaffinity(0))}):
        set_num_threads(threads)
        latencies = []
        for i in range(single_rows):
            row = x[i % len(x) : i % len(x) + 1]
            started = time.perf_counter()
            model.classify(row)
            latencies.append(time.perf_counter() - started)
        p50, p95, p99 = percentiles(latencies)
        rows.append(Row(spec, f"in-process single, {threads} FAISS thread(s)", 1, single_rows / float(np.sum(latencies)),
                        p50, p95, p99, single_rows))
    return rows


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(bundle: Path, batching: bool, faiss_threads: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, "-m", "knnserve.cli", "serve", "--model", str(bundle), "--port", str(port),
               "--log-level", "WARNING"]
    if not batching:
        command.append("--no-batching")
    if faiss_threads is not None:
        command += ["--faiss-threads", str(faiss_threads)]
    process = subprocess.Popen(command)
    target = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.RpcError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {command}")
            time.sleep(0.1)
    return process, target


def health_rtt(target: str, calls: int = 300) -> float:
    """p50 of a grpc.health.v1 Check round trip in ms: the floor of a Python gRPC call here."""
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service="")
        latencies = []
        for _ in range(calls):
            started = time.perf_counter()
            stub.Check(request, timeout=10)
            latencies.append(time.perf_counter() - started)
    return float(np.median(latencies) * 1e3)


def load(target: str, model: str, x: np.ndarray, clients: int, *, warmup: float, duration: float) -> tuple[float, list[float]]:
    """`clients` threads, each its own Client, sending 1-row requests back to back; (QPS, latencies) of the
    requests completed in the measurement window."""
    stop = threading.Event()
    window: list[float] = []
    results: list[list[tuple[float, float]]] = [[] for _ in range(clients)]
    connected = threading.Barrier(clients + 1)

    def run(worker: int) -> None:
        with Client(target, timeout=60) as client:
            client.limits()
            connected.wait()
            i = worker * 997
            while not stop.is_set():
                row = x[i % len(x) : i % len(x) + 1]
                started = time.perf_counter()
                client.classify(model, row)
                ended = time.perf_counter()
                results[worker].append((started, ended))
                i += 1

    threads = [threading.Thread(target=run, args=(w,)) for w in range(clients)]
    for thread in threads:
        thread.start()
    connected.wait()
    begin = time.perf_counter() + warmup
    time.sleep(warmup + duration)
    end = time.perf_counter()
    stop.set()
    for thread in threads:
        thread.join()
    for per_worker in results:
        # Completions inside the window: a fair rate even when latency is a large part of the window.
        window.extend(e - s for s, e in per_worker if begin <= e <= end)
    return len(window) / (end - begin), window


def machine() -> str:
    from knnserve.machine import cpu_model, usable_cores

    return (f"{cpu_model()}, {usable_cores()} cores available, Python {platform.python_version()}, faiss {build_info()['faiss']}, "
            f"grpcio {grpc.__version__}, {platform.system()} {platform.release()}")


def render(rows: list[Row], command: str, notes: list[str], checks: list[str]) -> str:
    out = [
        "# Service benchmark: knnserve over gRPC vs in-process",
        "",
        f"- command: `{command}`",
        f"- machine: {machine()}",
        f"- date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
        "- data: Fashion-MNIST (60k train vectors of 784 uint8 pixels; queries from the 10k test split), k = 5 (bundle default)",
        "- requests: 1 row each; QPS = requests completed in the measurement window / window; latency = client-side round trip",
        "",
    ]
    out += [f"- {note}" for note in notes]
    out += ["", "| index | mode | clients | QPS | p50 ms | p95 ms | p99 ms | requests |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r.index} | {r.mode} | {r.clients} | {r.qps:.0f} | {r.p50_ms:.2f} | {r.p95_ms:.2f} | {r.p99_ms:.2f} | {r.requests} |")
    out += ["", "## Ratios and targets", ""] + [f"- {check}" for check in checks] + [""]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/knnserve-bench"), help="bundle cache")
    parser.add_argument("--indexes", nargs="+", default=["Flat", "HNSW32"])
    parser.add_argument("--clients", nargs="+", type=int, default=[1, 4, 16, 64])
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--batched-rows", type=int, default=1000)
    parser.add_argument("--single-rows", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "service.md")
    args = parser.parse_args()

    # Same BLAS threshold as the server, so in-process and served searches take the same FAISS paths.
    set_blas_threshold(DEFAULT_BLAS_THRESHOLD)
    dataset = load_dataset("fashion-mnist", download=False)
    x = dataset.x_test
    rows: list[Row] = []
    floors: list[str] = []
    for spec in args.indexes:
        bundle = ensure_bundle(args.work_dir, dataset, spec)
        model = KNNModel.load(bundle)
        factory = model.index_info.factory
        baseline = in_process(model, x, batched_rows=args.batched_rows, single_rows=args.single_rows, repeats=args.repeats)
        rows += baseline
        print(*baseline, sep="\n", flush=True)
        reference = model.classify(x[:50]).predictions
        cores = len(os.sched_getaffinity(0))
        variants = [(True, None, args.clients), (False, None, args.clients)]
        if cores > 1:
            variants.append((True, max(1, cores // 2), [c for c in args.clients if c >= 16]))  # FAISS on half the cores
        for batching, faiss_threads, client_counts in variants:
            process, target = start_server(bundle, batching, faiss_threads)
            try:
                with Client(target) as client:
                    served = client.classify(model.manifest.name, x[:50]).knn.predictions
                    assert np.array_equal(served, reference), "server answers differ from in-process"
                if faiss_threads is None:
                    floor = health_rtt(target)
                    floors.append(f"{factory}, batching {'on' if batching else 'off'}: health Check p50 {floor:.2f} ms")
                for clients in client_counts:
                    qps, latencies = load(target, model.manifest.name, x, clients, warmup=args.warmup, duration=args.duration)
                    p50, p95, p99 = percentiles(latencies)
                    mode = f"server, batching {'on' if batching else 'off'}"
                    if faiss_threads is not None:
                        mode += f", --faiss-threads {faiss_threads}"
                    rows.append(Row(factory, mode, clients, qps, p50, p95, p99, len(latencies)))
                    print(rows[-1], flush=True)
            finally:
                process.terminate()
                process.wait(30)
        del model

    def find(index: str, mode: str, clients: int = 1) -> Row | None:
        return next((r for r in rows if r.index == index and r.mode == mode and r.clients == clients), None)

    checks: list[str] = []
    for factory in dict.fromkeys(r.index for r in rows):
        batched = max((r for r in rows if r.index == factory and r.mode.startswith("in-process batched, all")),
                      key=lambda r: r.qps, default=None)
        batched16 = max((r for r in rows if r.index == factory and r.mode.startswith("in-process batched, 16")),
                        key=lambda r: r.qps, default=None)
        # The server's default FAISS threads are the cores: compare with in-process search on as many.
        single = find(factory, f"in-process single, {len(os.sched_getaffinity(0))} FAISS thread(s)")
        off16 = find(factory, "server, batching off", 16)
        for on16 in (r for r in rows if r.index == factory and r.mode.startswith("server, batching on") and r.clients == 16):
            if batched and batched16 and off16:
                checks.append(
                    f"{factory}, 16 clients, {on16.mode.removeprefix('server, ')}: {on16.qps:.0f} QPS = "
                    f"{on16.qps / batched.qps:.2f} x in-process batched ({batched.qps:.0f} QPS, all rows in one call; "
                    f"target >= 0.5), {on16.qps / batched16.qps:.2f} x in-process at 16 rows per call ({batched16.qps:.0f} QPS), "
                    f"{on16.qps / off16.qps:.1f} x batching off ({off16.qps:.0f} QPS; target >= 5)"
                )
        for mode in ("server, batching on", "server, batching off"):
            one = find(factory, mode, 1)
            if single and one:
                checks.append(
                    f"{factory}, 1 client, {mode.split(', ')[1]}: p50 round trip {one.p50_ms:.2f} ms vs in-process single "
                    f"{single.p50_ms:.2f} ms: overhead {one.p50_ms - single.p50_ms:.2f} ms (target < 1 ms for HNSW)"
                )
    notes = [
        "the load generator (this process, one thread and one channel per client) and the server (a subprocess, default "
        "thread sizing) share the same cores, so every server figure includes client CPU time competing with the server",
        "in-process batched = one KNNModel.classify() over the first "
        f"{args.batched_rows} test rows (median of {args.repeats}); in-process single = classify() of one row per call, "
        f"{args.single_rows} calls; measured in this process while no server runs; the overhead figures compare with "
        "in-process single at the server's default FAISS threads (one per core: FAISS spreads even one exact query "
        "over threads)",
        f"both bundles store float32 vectors (storage='float32'); FAISS BLAS threshold {DEFAULT_BLAS_THRESHOLD} rows "
        "in the server and in-process (FAISS 1.15's default, 128000, never uses BLAS for small batches)",
        "server thread sizing (defaults on 2 cores): batching on = one search at a time per model (on the batching "
        "thread, or inline on the caller's worker when the batcher is idle) with 2 FAISS threads, 64 gRPC workers, "
        "max 256 rows, adaptive wait (at most 1/4 of the last search, capped at 10 ms); batching off = 2 gRPC "
        "workers with 1 FAISS thread each; the '--faiss-threads 1' rows leave one core to the gRPC workers",
    ]
    notes.append(
        "gRPC floor on this machine: a grpc.health.v1 Check (tiny messages, same interceptors) round trip: "
        + "; ".join(floors)
    )
    command = "flock /work/bench.lock .venv/bin/python benchmarks/bench_service.py " + " ".join(sys.argv[1:])
    text = render(rows, command.strip(), notes, checks)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
