"""Throughput of the Open Inference Protocol (KServe v2, driven by tritonclient) against knnserve.v1
(driven by the knnserve client): same server, same model, same one-row requests, same concurrency.
Rounds alternate v1, v2, v2, v1, ... so drift on a shared machine falls on both; the ratio is of medians.

    flock /work/bench.lock .venv/bin/python benchmarks/bench_open_inference.py --index flat

Two request shapes: predictions only (v1 top_n=0; v2 outputs=[predictions]) and the protocol's default
answer (v2 with no outputs named: predictions + the (n, C) scores; v1 top_n=C). Target: v2 >= 0.9x v1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_load import ensure_bundle  # noqa: E402
from loadgen import Kind, run_load_probed  # noqa: E402
from servers import cpu_seconds, start_knnserve, stop  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CLASSES = 10


def shapes(clients: int) -> dict[str, dict[str, Kind]]:
    """Request shape -> protocol -> the kind of client that sends it."""
    return {
        "predictions only": {
            "v1": Kind("v1", clients, {"top_n": 0}),
            "v2": Kind("v2", clients, {"outputs": ["predictions"]}, protocol="v2"),
        },
        "predictions + scores": {
            "v1": Kind("v1", clients, {"top_n": CLASSES}),
            "v2": Kind("v2", clients, {}, protocol="v2"),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--index", default="flat", help="index of the bundle (default: flat)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="rounds per protocol and shape (default: 3)")
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds per round")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/knnserve-bench-load"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from knnserve.data import load_dataset
    from knnserve.machine import cpu_model, usable_cores

    x = load_dataset("fashion-mnist", download=False).x_test
    bundle = ensure_bundle(args.work_dir, args.index)
    process, target = start_knnserve("--model", str(bundle))
    rates: dict[str, dict[str, list[float]]] = {shape: {"v1": [], "v2": []} for shape in shapes(args.clients)}
    p99: dict[str, dict[str, list[float]]] = {shape: {"v1": [], "v2": []} for shape in shapes(args.clients)}
    cpu_ms: dict[str, dict[str, list[float]]] = {shape: {"v1": [], "v2": []} for shape in shapes(args.clients)}
    failures: dict[str, dict[str, int]] = {}
    try:
        for shape, kinds in shapes(args.clients).items():
            for round_number in range(args.rounds):
                order = ("v1", "v2") if round_number % 2 == 0 else ("v2", "v1")
                for protocol in order:
                    reports, (cpu_start, cpu_stop) = run_load_probed(
                        target, x, [kinds[protocol]], model="fashion", warmup=args.warmup, duration=args.duration,
                        processes=args.processes, probe=lambda: cpu_seconds(process.pid))
                    report = reports[protocol]
                    rates[shape][protocol].append(report.rate(args.duration))
                    cpu_ms[shape][protocol].append((cpu_stop - cpu_start) * 1e3 / max(report.completed, 1))
                    p99[shape][protocol].append(report.percentile_ms(99))
                    for code, count in report.failures.items():
                        failures.setdefault(f"{shape} {protocol}", {}).setdefault(code, 0)
                        failures[f"{shape} {protocol}"][code] += count
                    print(shape, protocol, f"{rates[shape][protocol][-1]:.1f} rps", flush=True)
    finally:
        stop(process)
    stamp = datetime.now(timezone.utc)
    lines = [
        f"# Open Inference Protocol (v2) vs knnserve.v1 throughput: {args.index} ({stamp:%Y-%m-%d})",
        "",
        f"- command: `flock /work/bench.lock .venv/bin/python benchmarks/bench_open_inference.py {' '.join(sys.argv[1:])}`",
        f"- machine: {cpu_model()}, {usable_cores()} cores, shared by the server and the load processes; "
        f"{stamp:%Y-%m-%d %H:%M} UTC; load average at the end {'/'.join(f'{v:.2f}' for v in os.getloadavg())}",
        f"- server: `knnserve serve --model` a Fashion-MNIST bundle (60k raw pixels, index {args.index}, k=5), default settings",
        f"- load: {args.clients} one-row clients in {args.processes} processes (v1: knnserve_client.Client; v2: "
        f"tritonclient.grpc 2.41.0, UINT8 input); {args.rounds} rounds per protocol and shape, alternating, "
        f"{args.warmup:g} s warm-up + {args.duration:g} s measured each",
        "",
        "| request shape | v1 requests/s (median) | v2 requests/s (median) | v2 / v1 | v1 p99 ms | v2 p99 ms | "
        "server CPU ms/request v1 | v2 | v2 / v1 | rounds v1 | rounds v2 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for shape in rates:
        v1, v2 = statistics.median(rates[shape]["v1"]), statistics.median(rates[shape]["v2"])
        c1, c2 = statistics.median(cpu_ms[shape]["v1"]), statistics.median(cpu_ms[shape]["v2"])
        lines.append(
            f"| {shape} | {v1:.1f} | {v2:.1f} | **{v2 / v1:.3f}x** | {statistics.median(p99[shape]['v1']):.1f} | "
            f"{statistics.median(p99[shape]['v2']):.1f} | {c1:.3f} | {c2:.3f} | {c2 / c1:.2f}x | "
            f"{', '.join(f'{r:.0f}' for r in rates[shape]['v1'])} | "
            f"{', '.join(f'{r:.0f}' for r in rates[shape]['v2'])} |")
    lines += ["", f"- failures: {failures or 'none'}", "- target: v2 within 10% of v1 (ratio >= 0.9)",
              "- server CPU per request: utime + stime of the server process over the window / requests completed "
              "(/proc); unlike requests/s it does not move with the CPU the two client libraries take on the same cores", ""]
    text = "\n".join(lines)
    print(text)
    out = args.out or ROOT / "benchmarks" / "results" / f"open-inference-{args.index}-{stamp:%Y-%m-%d}.md"
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps({"rates": rates, "p99_ms": p99, "server_cpu_ms": cpu_ms, "failures": failures}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
