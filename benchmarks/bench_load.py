"""Load test with an abusive client: 64 one-row clients for 60 s against a Fashion-MNIST bundle, then the
same with one of them replaced by a client asking what used to hurt everybody (a huge k inside every
limit, or a huge efSearch), in the same run. The load comes from processes of its own (loadgen.py).

    flock /work/bench.lock .venv/bin/python benchmarks/bench_load.py --index flat --abuse k=60000
    flock /work/bench.lock .venv/bin/python benchmarks/bench_load.py --index hnsw --abuse ef_search=2000000

Reports the normal clients' throughput and latency with and without the abusive one (target: their
p99 within 2x), every failure by status code, and the server's resident memory at the start and end
of each phase (target: bounded).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import Kind, KindReport, run_load  # noqa: E402
from servers import memory_mb, start_knnserve, stop  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def ensure_bundle(work: Path, index: str) -> Path:
    """A Fashion-MNIST bundle (raw pixels, k=5) in the work folder, built once."""
    path = work / f"fashion-{index}"
    if not (path / "manifest.json").is_file():
        subprocess.run([sys.executable, "-m", "knnserve.cli", "train", "--dataset", "fashion-mnist", "--no-download",
                        "--index", index, "--k", "5", "--preprocess", "raw", "--linear", "none", "--out", str(path),
                        "--name", "fashion", "--no-progress"], check=True, stdout=subprocess.DEVNULL)
    return path


def parse_abuse(text: str) -> dict[str, int]:
    name, _, value = text.partition("=")
    return {name.strip(): int(value)}


def phase_row(name: str, report: KindReport, seconds: float) -> str:
    failures = ", ".join(f"{code} {count}" for code, count in sorted(report.failures.items())) or "none"
    return (f"| {name} | {report.rate(seconds):.1f} | {report.percentile_ms(50):.1f} | {report.percentile_ms(99):.1f} | "
            f"{report.completed} | {failures} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--index", default="flat", help="index of the bundle (default: flat)")
    parser.add_argument("--abuse", type=parse_abuse, default={"k": 60000}, help="the abusive client's option, NAME=VALUE")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1, help="server processes (knnserve serve --workers)")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/knnserve-bench-load"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from knnserve.data import load_dataset
    from knnserve.machine import cpu_model, usable_cores

    x = load_dataset("fashion-mnist", download=False).x_test
    bundle = ensure_bundle(args.work_dir, args.index)
    process, target = start_knnserve("--model", str(bundle), "--workers", str(args.workers))
    abuse_name = ",".join(f"{k}={v}" for k, v in args.abuse.items())
    phases = {
        "without": [Kind("normal", args.clients, {"top_n": 0})],
        "with": [Kind("normal", args.clients - 1, {"top_n": 0}), Kind(f"abusive ({abuse_name})", 1, {**args.abuse, "top_n": 0})],
    }
    results: dict[str, dict[str, KindReport]] = {}
    memory: dict[str, tuple[float, float]] = {}
    try:
        for phase, kinds in phases.items():
            before = memory_mb(process.pid)[0]
            results[phase] = run_load(target, x, kinds, model="fashion", warmup=args.warmup, duration=args.duration,
                                      processes=args.processes)
            memory[phase] = (before, memory_mb(process.pid)[0])
            print(phase, {name: (r.completed, r.percentile_ms(99), dict(r.failures)) for name, r in results[phase].items()}, flush=True)
    finally:
        stop(process)
    normal_without, normal_with = results["without"]["normal"], results["with"]["normal"]
    ratio = normal_with.percentile_ms(99) / normal_without.percentile_ms(99)
    stamp = datetime.now(timezone.utc)
    lines = [
        f"# Load with an abusive client: {args.index}, {abuse_name} ({stamp:%Y-%m-%d})",
        "",
        f"- command: `flock /work/bench.lock .venv/bin/python benchmarks/bench_load.py {' '.join(sys.argv[1:])}`",
        f"- machine: {cpu_model()}, {usable_cores()} cores, shared by the server and the load processes; date "
        f"{stamp:%Y-%m-%d %H:%M} UTC; load average at the end {'/'.join(f'{v:.2f}' for v in os.getloadavg())}",
        f"- server: `knnserve serve --model --workers {args.workers}` a Fashion-MNIST bundle (60k raw pixels, index "
        f"{args.index}, k=5), default settings otherwise",
        f"- load: {args.clients} one-row Classify clients ({args.processes} processes, a Client per thread, no retries), "
        f"{args.warmup:g} s warm-up then {args.duration:g} s measured per phase; phase 'with': one client replaced by the "
        f"abusive one ({abuse_name})",
        "",
        "| phase / clients | requests/s | p50 ms | p99 ms | completed | failures |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for phase, reports in results.items():
        for name, report in reports.items():
            lines.append(phase_row(f"{phase}: {name}", report, args.duration))
    lines += [
        "",
        f"- normal clients' p99 with the abusive client / without: **{ratio:.2f}x** (target <= 2x)",
        f"- normal clients' throughput with / without: {normal_with.rate(args.duration) / normal_without.rate(args.duration):.2f}x "
        f"(one client fewer in 'with')",
        "- server resident memory (MB, start -> end of each phase): "
        + "; ".join(f"{phase} {a:.0f} -> {b:.0f}" for phase, (a, b) in memory.items()),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    suffix = f"-workers{args.workers}" if args.workers > 1 else ""
    out = args.out or ROOT / "benchmarks" / "results" / f"load-{args.index}{suffix}-{stamp:%Y-%m-%d}.md"
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps(
        {phase: {name: {"completed": r.completed, "p50_ms": r.percentile_ms(50), "p99_ms": r.percentile_ms(99),
                        "failures": dict(r.failures)} for name, r in reports.items()} for phase, reports in results.items()},
        indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
