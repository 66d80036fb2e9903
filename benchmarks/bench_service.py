"""Serving overhead, measured from outside the server: throughput, latency and the server's CPU time per
request, with the load in processes of its own (loadgen.py), before and after a change in one run.

    flock /tmp/knnserve-bench.lock .venv/bin/python benchmarks/bench_service.py --base 0c995d0 --tuned dbecb9c

Sides: ``head`` is the working tree; with ``--base REV`` the same measurements run against that revision
too (a git worktree, ``PYTHONPATH`` pointing at its server/ and client/), sides alternating round by round.
``--tuned REV`` adds that revision started with ``--grpc-workers 4`` (the synchronous server's best
setting for cheap searches) to the cpu, hnsw and flat sections. Sections (``--sections``, default all):

* ``cpu``: a digits HNSW bundle (the search costs microseconds): the server's CPU seconds (utime +
  stime of the server and its worker processes, /proc/PID/stat) over the window divided by the
  requests completed in it, for one-row Classify with 4 clients in 4 processes, 16 in 16 and 16 in
  4; for a grpc.health.v1 Check of the same server (16 in 4); and, as the baseline of every ratio,
  for a bare grpcio health server (synchronous, no interceptors) under the same load in the same
  run, and a bare grpc.aio one beside it (what asyncio itself costs).
* ``hnsw``: Fashion-MNIST HNSW32 (float32 storage), 16 one-row clients: requests/s, p50, p99, CPU/request.
* ``latency``: one client: the round-trip p50 of unary Classify on the digits and the Fashion-MNIST
  HNSW bundles minus a bare health Check's round-trip p50 (and minus in-process classify, for scale).
* ``flat``: Fashion-MNIST Flat, 16 one-row clients against in-process classify of 16 rows per call.
* ``many``: Fashion-MNIST HNSW32, 256 one-row clients in 8 processes: failures, p50, p99.
* ``workers``: head only, Flat Fashion-MNIST with ``--workers 1`` and ``--workers 2``, each with the
  default ``--kernel auto`` and with ``--kernel faiss``: memory of all the server's processes after load
  (RSS summed, and PSS, which divides shared pages among their users) and 16-client throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ab_revisions import Side, worktree  # noqa: E402
from loadgen import Kind, KindReport, run_load_probed  # noqa: E402
from servers import cpu_seconds, free_port, memory_mb, running_knnserve, wait_until_serving  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ("cpu", "hnsw", "latency", "flat", "many", "workers")
# serve --kernel policies the workers section runs, with their label suffixes: the default, whose
# exact-int8 kernel keeps a private copy of the vectors per process, and FAISS alone (mapped pages only).
KERNELS = {"auto": "", "faiss": ", --kernel faiss"}
MODEL = "bench"

BARE_HEALTH_SERVER = """
import sys, time
from concurrent import futures
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
server = grpc.server(futures.ThreadPoolExecutor(max_workers=int(sys.argv[2])))
servicer = health.HealthServicer()
servicer.set("", health_pb2.HealthCheckResponse.SERVING)
health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
server.add_insecure_port(f"127.0.0.1:{sys.argv[1]}")
server.start()
print("ready", flush=True)
server.wait_for_termination()
"""

BARE_AIO_HEALTH_SERVER = """
import asyncio, sys
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
async def main():
    server = aio.server()
    servicer = health_aio.HealthServicer()
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    server.add_insecure_port(f"127.0.0.1:{sys.argv[1]}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()
asyncio.run(main())
"""

BUNDLE_BUILDER = """
import sys
from knnserve.data import load_dataset
from knnserve.model import KNNModel
ds = load_dataset(sys.argv[2], download=False)
KNNModel.fit(ds.x_train, ds.y_train, class_names=ds.class_names, index=sys.argv[3], storage="float32").save(sys.argv[1], name="bench")
"""


# -- servers ---------------------------------------------------------------------------------------


@contextmanager
def knnserve(side: Side, bundle: Path, *extra: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``knnserve serve --model BUNDLE EXTRA`` from one side's code, for a ``with`` block."""
    with running_knnserve("--model", str(bundle), *extra, env=side.env(), what=f"{side.name} server") as served:
        yield served


@contextmanager
def bare_health_server(workers: int, *, aio: bool = False) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", BARE_AIO_HEALTH_SERVER if aio else BARE_HEALTH_SERVER, str(port),
                                str(workers)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = f"127.0.0.1:{port}"
    try:
        wait_until_serving(target, process, "bare health server")
        yield process, target
    finally:
        process.kill()
        process.wait(30)


# -- measurements ----------------------------------------------------------------------------------


@dataclass
class Figure:
    """One configuration measured over rounds: requests/s, p50/p99 ms and server CPU ms per request."""

    rps: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)

    def add(self, report: KindReport, seconds: float, cpu: float) -> None:
        self.rps.append(report.rate(seconds))
        self.p50_ms.append(report.percentile_ms(50))
        self.p99_ms.append(report.percentile_ms(99))
        self.cpu_ms.append(cpu * 1e3 / max(report.completed, 1))
        for code, count in report.failures.items():
            self.failures[code] = self.failures.get(code, 0) + count

    def median(self, name: str) -> float:
        return float(statistics.median(getattr(self, name)))


@dataclass(frozen=True)
class LoadShape:
    clients: int
    processes: int
    warmup: float
    duration: float


def measure(pid: int, target: str, x: np.ndarray, kind: Kind, shape: LoadShape, figure: Figure) -> None:
    reports, (start, stop) = run_load_probed(target, x, [kind], model=MODEL if kind.method != "health" else kind.options.get("service", ""),
                                             warmup=shape.warmup, duration=shape.duration, processes=shape.processes,
                                             probe=lambda: cpu_seconds(pid))
    figure.add(reports[kind.name], shape.duration, stop - start)


def classify_kind(clients: int) -> Kind:
    return Kind("classify", clients, {"top_n": 0})


def health_kind(clients: int) -> Kind:
    return Kind("health", clients, {}, method="health")


def in_process_p50_ms(bundle: Path, x: np.ndarray, rows: int, calls: int) -> tuple[float, float]:
    """(p50 ms of KNNModel.classify of ``rows`` rows per call, rows/s) in this process, default FAISS threads."""
    from knnserve.model import KNNModel

    model = KNNModel.load(bundle)
    model.classify(x[:rows])
    seconds = []
    for i in range(calls):
        start = (i * rows) % (len(x) - rows)
        began = time.perf_counter()
        model.classify(x[start:start + rows])
        seconds.append(time.perf_counter() - began)
    p50 = float(np.median(seconds))
    return p50 * 1e3, rows / p50


def ensure_bundle(work: Path, dataset: str, index: str, side: Side) -> Path:
    path = work / f"bundle-{dataset}-{index.lower().replace(',', '-')}"
    if not (path / "manifest.json").is_file():
        subprocess.run([sys.executable, "-c", BUNDLE_BUILDER, str(path), dataset, index], env=side.env(), check=True)
    return path


@dataclass(frozen=True)
class Config:
    """A side started with extra ``serve`` options, under a label of its own."""

    side: Side
    extra: tuple[str, ...] = ()
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or self.side.name


def alternate(configs: list[Config], rounds: int) -> list[Config]:
    """ABBA: the configurations' order flips every round."""
    order: list[Config] = []
    for r in range(rounds):
        order += configs if r % 2 == 0 else configs[::-1]
    return order


# The cpu section's loads: (clients, processes).
CPU_LOADS = ((4, 4), (16, 16), (16, 4))


def load_name(clients: int, processes: int) -> str:
    return f"{clients} clients in {processes} processes"


# -- report ----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--base", default=None, help="git revision measured beside the working tree")
    parser.add_argument("--tuned", default=None, help="git revision measured with --grpc-workers 4 (cpu, hnsw, flat)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--rounds", type=int, default=2, help="rounds per side and configuration (median)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--processes", type=int, default=4, help="load generator processes")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/knnserve-bench-service"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from knnserve.data import load_dataset
    from knnserve.machine import cpu_model, usable_cores

    args.work_dir.mkdir(parents=True, exist_ok=True)
    head = Side("head", ROOT)
    base = Side("base", worktree(args.base, args.work_dir / "ab")) if args.base else None
    configs = ([Config(base)] if base else []) + [Config(head)]
    tuned = ([Config(Side("tuned", worktree(args.tuned, args.work_dir / "ab")), ("--grpc-workers", "4"),
                     "tuned (--grpc-workers 4)")] if args.tuned else [])
    builder = base or head
    many = LoadShape(args.clients, args.processes, args.warmup, args.duration)
    one = LoadShape(1, 1, args.warmup, args.duration)
    results: dict[str, Figure] = {}
    notes: dict[str, Any] = {"sides": {"base": args.base, "tuned": args.tuned, "head": "working tree"}}
    bare_workers = max(64, 8 * usable_cores())

    def figure(name: str) -> Figure:
        return results.setdefault(name, Figure())

    digits = load_dataset("digits", download=False).x_test
    digits_hnsw = ensure_bundle(args.work_dir, "digits", "HNSW32", builder)
    if "cpu" in args.sections:
        for _ in range(args.rounds):
            for clients, processes in CPU_LOADS:
                shape = LoadShape(clients, processes, args.warmup, args.duration)
                load = load_name(clients, processes)
                with bare_health_server(bare_workers) as (process, target):
                    measure(process.pid, target, digits, health_kind(clients), shape, figure(f"cpu, {load}: bare grpcio health Check"))
                if (clients, processes) == (16, 4):
                    with bare_health_server(bare_workers, aio=True) as (process, target):
                        measure(process.pid, target, digits, health_kind(clients), shape,
                                figure(f"cpu, {load}: bare grpc.aio health Check"))
                for config in alternate(configs + tuned, 1):
                    with knnserve(config.side, digits_hnsw, *config.extra) as (process, target):
                        if (clients, processes) == (16, 4):
                            measure(process.pid, target, digits, health_kind(clients), shape,
                                    figure(f"cpu, {load}: {config.name}: knnserve health Check"))
                        measure(process.pid, target, digits, classify_kind(clients), shape,
                                figure(f"cpu, {load}: {config.name}: Classify"))
            print({k: round(v.median("cpu_ms"), 3) for k, v in results.items() if k.startswith("cpu")}, flush=True)

    fashion = load_dataset("fashion-mnist", download=False).x_test
    fashion_hnsw = ensure_bundle(args.work_dir, "fashion-mnist", "HNSW32", builder)
    if "hnsw" in args.sections:
        for config in alternate(configs + tuned, args.rounds):
            with knnserve(config.side, fashion_hnsw, *config.extra) as (process, target):
                measure(process.pid, target, fashion, classify_kind(args.clients), many,
                        figure(f"hnsw {config.name}: {args.clients} clients"))
        print({k: round(v.median("rps"), 1) for k, v in results.items() if k.startswith("hnsw")}, flush=True)

    if "latency" in args.sections:
        notes["in-process one-row HNSW32 classify p50 ms (fashion-mnist)"] = in_process_p50_ms(fashion_hnsw, fashion, 1, 500)[0]
        notes["in-process one-row HNSW32 classify p50 ms (digits)"] = in_process_p50_ms(digits_hnsw, digits, 1, 500)[0]
        for config in alternate(configs, args.rounds):
            for dataset, bundle, x in (("digits", digits_hnsw, digits), ("fashion-mnist", fashion_hnsw, fashion)):
                with knnserve(config.side, bundle) as (process, target):
                    measure(process.pid, target, x, classify_kind(1), one, figure(f"latency {config.name}: {dataset}, 1 client"))
            with bare_health_server(bare_workers) as (process, target):
                measure(process.pid, target, digits, health_kind(1), one, figure("latency: bare grpcio health Check, 1 client"))

    if "flat" in args.sections:
        bundle = ensure_bundle(args.work_dir, "fashion-mnist", "Flat", builder)
        notes["in-process Flat classify, 16 rows per call: rows/s"] = in_process_p50_ms(bundle, fashion, 16, 60)[1]
        for config in alternate(configs + tuned, args.rounds):
            with knnserve(config.side, bundle, *config.extra) as (process, target):
                measure(process.pid, target, fashion, classify_kind(args.clients), many, figure(f"flat {config.name}: {args.clients} clients"))
        print({k: round(v.median("rps"), 1) for k, v in results.items() if k.startswith("flat")}, flush=True)

    if "many" in args.sections:
        shape = LoadShape(256, 8, args.warmup, args.duration)
        for config in alternate(configs, args.rounds):
            with knnserve(config.side, fashion_hnsw) as (process, target):
                measure(process.pid, target, fashion, classify_kind(256), shape, figure(f"many {config.name}: 256 clients in 8 processes"))

    if "workers" in args.sections:
        bundle = ensure_bundle(args.work_dir, "fashion-mnist", "Flat", builder)
        for _ in range(args.rounds):
            for kernel, workers in ((kernel, workers) for kernel in KERNELS for workers in (1, 2)):
                label = f"workers {workers}{KERNELS[kernel]}"
                with knnserve(head, bundle, "--workers", str(workers), "--kernel", kernel) as (process, target):
                    before = memory_mb(process.pid)
                    measure(process.pid, target, fashion, classify_kind(args.clients), many, figure(f"{label}: {args.clients} clients"))
                    after = memory_mb(process.pid)
                    notes.setdefault(f"{label}: memory MB (RSS sum, PSS sum) idle -> after load", []).append(
                        [round(v, 1) for v in (*before, *after)])

    stamp = datetime.now(timezone.utc)
    report = render(args, results, notes, stamp, f"{cpu_model()}, {usable_cores()} cores")
    print(report)
    out = args.out or ROOT / "benchmarks" / "results" / f"service-{stamp:%Y-%m-%d}.md"
    out.write_text(report)
    out.with_suffix(".json").write_text(json.dumps({"figures": {k: v.__dict__ for k, v in results.items()}, "notes": notes}, indent=2) + "\n")
    return 0


def render(args: argparse.Namespace, results: dict[str, Figure], notes: dict[str, Any], stamp: datetime, machine: str) -> str:
    lines = [
        f"# Serving overhead ({stamp:%Y-%m-%d})",
        "",
        f"- command: `flock /tmp/knnserve-bench.lock .venv/bin/python benchmarks/bench_service.py {' '.join(sys.argv[1:])}`",
        f"- machine: {machine}, shared by the server and the load processes; {stamp:%Y-%m-%d %H:%M} UTC; load average "
        f"at the end {'/'.join(f'{v:.2f}' for v in os.getloadavg())}",
        f"- load: loadgen.py, {args.clients} one-row clients in {args.processes} processes (or 1 client), {args.warmup:g} s "
        f"warm-up + {args.duration:g} s measured, {args.rounds} round(s) per configuration, medians; Classify with top_n=0",
        "- server CPU per request: utime + stime of the server's processes over the window / requests completed in it",
        "",
        "| configuration | requests/s | p50 ms | p99 ms | server CPU ms / request | rounds (requests/s) | failures |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for name, fig in results.items():
        lines.append(f"| {name} | {fig.median('rps'):.1f} | {fig.median('p50_ms'):.2f} | {fig.median('p99_ms'):.2f} | "
                     f"{fig.median('cpu_ms'):.3f} | {', '.join(f'{r:.0f}' for r in fig.rps)} | {fig.failures or 'none'} |")
    lines += ["", "## Targets", ""]
    lines += targets(results, notes, args)
    lines += ["", "## Notes", ""] + [f"- {k}: {json.dumps(v)}" for k, v in notes.items()] + [""]
    return "\n".join(lines)


def targets(results: dict[str, Figure], notes: dict[str, Any], args: argparse.Namespace) -> list[str]:
    out = []
    get = results.get
    names = ["base", "tuned (--grpc-workers 4)", "head"]

    def ratio(a: Figure | None, b: Figure | None, what: str) -> float | None:
        return a.median(what) / b.median(what) if a and b else None

    for clients, processes in CPU_LOADS:
        load = load_name(clients, processes)
        bare = get(f"cpu, {load}: bare grpcio health Check")
        target = "<= 2x" if (clients, processes) == (4, 4) else "<= 1.5x"
        for name in names:
            classify = get(f"cpu, {load}: {name}: Classify")
            value = ratio(classify, bare, "cpu_ms")
            if value is not None:
                out.append(f"- server CPU per one-row Classify / bare grpcio health Check, {load}, {name}: "
                           f"{classify.median('cpu_ms'):.3f} / {bare.median('cpu_ms'):.3f} ms = **{value:.2f}x** (target {target})")  # type: ignore[union-attr]
        aio = get(f"cpu, {load}: bare grpc.aio health Check")
        if aio and bare:
            out.append(f"- bare grpc.aio health Check / bare grpcio health Check, {load}: {aio.median('cpu_ms'):.3f} / "
                       f"{bare.median('cpu_ms'):.3f} ms = {aio.median('cpu_ms') / bare.median('cpu_ms'):.2f}x")
        for name in names:
            check = get(f"cpu, {load}: {name}: knnserve health Check")
            value = ratio(check, bare, "cpu_ms")
            if value is not None:
                out.append(f"- knnserve health Check CPU / bare grpcio health Check, {load}, {name}: **{value:.2f}x** (target <= 1.15x)")
    key = "in-process Flat classify, 16 rows per call: rows/s"
    for name in names:
        flat = get(f"flat {name}: {args.clients} clients")
        if flat and key in notes:
            out.append(f"- Flat, {args.clients} one-row clients / in-process 16 rows per call, {name}: {flat.median('rps'):.0f} / "
                       f"{notes[key]:.0f} = **{flat.median('rps') / notes[key]:.2f}x** (target >= 0.8x)")
    base = get(f"hnsw base: {args.clients} clients")
    for name in names[1:]:
        other = get(f"hnsw {name}: {args.clients} clients")
        if other:
            line = f"- HNSW32, {args.clients} one-row clients, {name}: {other.median('rps'):.0f} requests/s"
            if base:
                line += f", base {base.median('rps'):.0f}: **{other.median('rps') / base.median('rps'):.2f}x** (target >= 2x)"
            out.append(line)
    bare_one = get("latency: bare grpcio health Check, 1 client")
    for name in names:
        for dataset in ("digits", "fashion-mnist"):
            latency = get(f"latency {name}: {dataset}, 1 client")
            inproc = notes.get(f"in-process one-row HNSW32 classify p50 ms ({dataset})")
            if latency and bare_one:
                out.append(f"- unary HNSW32 ({dataset}) round trip p50 - bare health round trip p50, {name}: "
                           f"{latency.median('p50_ms'):.3f} - {bare_one.median('p50_ms'):.3f} = "
                           f"**{latency.median('p50_ms') - bare_one.median('p50_ms'):.3f} ms** (target <= 0.3 ms); "
                           f"in-process one-row classify p50 {inproc:.3f} ms")
    for name in names:
        crowd = get(f"many {name}: 256 clients in 8 processes")
        if crowd:
            failures = sum(crowd.failures.values())
            out.append(f"- 256 one-row clients in 8 processes (Fashion-MNIST HNSW32), {name}: {failures} failures "
                       f"{crowd.failures or ''}, p50 {crowd.median('p50_ms'):.2f} ms, p99 {crowd.median('p99_ms'):.2f} ms, "
                       f"p99/p50 **{crowd.median('p99_ms') / crowd.median('p50_ms'):.2f}** (target 0 failures, <= 3), "
                       f"{crowd.median('rps'):.0f} requests/s")
    for suffix in KERNELS.values():
        one = notes.get(f"workers 1{suffix}: memory MB (RSS sum, PSS sum) idle -> after load")
        two = notes.get(f"workers 2{suffix}: memory MB (RSS sum, PSS sum) idle -> after load")
        if one and two:
            pss1 = statistics.median(r[3] for r in one)
            pss2 = statistics.median(r[3] for r in two)
            out.append(f"- --workers 2 / --workers 1{suffix} memory after load, Flat Fashion-MNIST: PSS {pss2:.0f} / {pss1:.0f} MB = "
                       f"**{pss2 / pss1:.2f}x**")
        w1, w2 = get(f"workers 1{suffix}: {args.clients} clients"), get(f"workers 2{suffix}: {args.clients} clients")
        if w1 and w2:
            out.append(f"- --workers 2 / --workers 1{suffix} throughput, Flat, {args.clients} clients: "
                       f"{w2.median('rps') / w1.median('rps'):.2f}x")
    return out


if __name__ == "__main__":
    sys.exit(main())
