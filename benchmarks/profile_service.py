"""Where a served one-row Classify spends the server's time: a py-spy profile of the server under load.

    pip install py-spy   # from PyPI; it reads the server's memory, so it runs as the same user (or root)
    flock /work/bench.lock .venv/bin/python benchmarks/profile_service.py

Starts ``knnserve serve`` on a digits HNSW32 bundle (a search costs microseconds, so what is left is
the serving path), drives it with 16 one-row Classify clients in 4 processes (loadgen.py), and records
the server twice while the load runs: a flame graph (SVG, every thread, idle waits left out) and the
same stacks as text with ``--gil`` (only the thread holding the interpreter lock: on one process
that is the time that decides throughput). The text is summarised into the Markdown beside the SVG:
the frames with the most samples of their own, and the share of the samples under a few parts of
the path (gRPC's own machinery and the event loop, knnserve's RPC wrapper, decode/encode, the data
plane, FAISS).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ab_revisions import Side  # noqa: E402
from bench_service import ROOT, classify_kind, ensure_bundle, knnserve  # noqa: E402
from loadgen import run_load_probed  # noqa: E402
from servers import cpu_seconds  # noqa: E402

# Parts of the request path, by a substring of a frame ("function (file:line)"); a sample counts
# toward every part whose frame is on its stack.
PARTS = {
    "gRPC server machinery and the event loop, inclusive (every handler runs under it)": (
        "grpc/_server.py", "grpc/_cython", "asyncio/", "concurrent/futures/thread.py", "knnserve/service/loop.py"),
    "knnserve RPC wrapper (auth, request ids, decode, logs, metrics)": ("knnserve/service/rpc.py", "knnserve/service/auth.py"),
    "decode the request / encode the answer": ("knnserve/service/servicer.py", "knnserve_client/wire/"),
    "data plane (limits, resolve, batcher, vote, top-n)": ("knnserve/dataplane/",),
    "FAISS search": ("backend.py",),
    "Prometheus client": ("prometheus_client/",),
}
# Samples with no knnserve frame on the stack but the loop's own (service/loop.py runs the event loop: with
# uvloop, libuv and grpc.aio's Cython callbacks show up as that frame's own samples): gRPC's own work
# (polling, completion, status), the event loop and the thread pools.
OUTSIDE = "no knnserve code on the stack but the loop's (gRPC, the event loop and thread pools alone)"
LOOP_FRAME = "knnserve/service/loop.py"


def summarise(raw: Path, top: int) -> tuple[int, list[tuple[str, int]], dict[str, int]]:
    """(samples, the frames with most samples of their own, samples under each of PARTS)."""
    total, own, parts = 0, Counter[str](), Counter[str]()
    ours = ("knnserve/", "knnserve_client/")
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        own[frames[-1]] += n
        for part, needles in PARTS.items():
            if any(needle in frame for frame in frames for needle in needles):
                parts[part] += n
        if not any(needle in frame and LOOP_FRAME not in frame for frame in frames for needle in ours):
            parts[OUTSIDE] += n
    return total, own.most_common(top), {part: parts[part] for part in (*PARTS, OUTSIDE)}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="seconds per recording (default: 12)")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second (default: 200)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "knnserve-bench-service")
    parser.add_argument("--out", type=Path, default=None, help="the SVG (default: benchmarks/results/service-profile-DATE.svg)")
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        parser.error("py-spy is not installed: pip install py-spy")

    from knnserve.data import load_dataset

    stamp = datetime.now(timezone.utc)
    out = args.out or ROOT / "benchmarks" / "results" / f"service-profile-{stamp:%Y-%m-%d}.svg"
    raw = out.with_suffix(".txt")
    head = Side("head", ROOT)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    bundle = ensure_bundle(args.work_dir, "digits", "HNSW32", head)
    x = load_dataset("digits", download=False).x_test
    rates = []
    with knnserve(head, bundle) as (server, target):
        for path, extra in ((out, ["-f", "flamegraph"]), (raw, ["-f", "raw", "--gil"])):
            recorder = subprocess.Popen([spy, "record", "-o", str(path), "--pid", str(server.pid), "--duration",
                                         str(int(args.seconds)), "--rate", str(args.rate), "--nonblocking", *extra],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            reports, (cpu_start, cpu_stop) = run_load_probed(
                target, x, [classify_kind(args.clients)], model="bench", warmup=1.0, duration=args.seconds,
                processes=4, probe=lambda: cpu_seconds(server.pid))
            report = next(iter(reports.values()))
            rates.append((report.rate(args.seconds), (cpu_stop - cpu_start) * 1e3 / max(report.completed, 1)))
            _, errors = recorder.communicate(timeout=120)
            if recorder.returncode != 0:
                raise SystemExit(f"py-spy failed: {errors.decode()[-500:]}")
    total, own, parts = summarise(raw, top=15)
    lines = [
        f"# Profile of a served one-row Classify ({stamp:%Y-%m-%d})",
        "",
        f"- command: `flock /work/bench.lock .venv/bin/python benchmarks/profile_service.py` (py-spy, {args.rate} samples/s, "
        f"{args.seconds:g} s per recording); machine: 2-core AMD EPYC, shared; {stamp:%Y-%m-%d %H:%M} UTC",
        f"- server: `knnserve serve --model` a digits HNSW32 bundle, defaults; load: {args.clients} one-row Classify "
        "clients (top_n=0) in 4 processes on the same cores",
        f"- while recording: {rates[0][0]:.0f} / {rates[1][0]:.0f} requests/s, server CPU {rates[0][1]:.3f} / "
        f"{rates[1][1]:.3f} ms per request (flame graph / GIL recording; py-spy's sampling costs the server some)",
        f"- flame graph (all threads, idle left out): `{out.name}`; stacks holding the GIL: `{raw.name}` ({total} samples)",
        "",
        "## Samples holding the GIL, by part of the path (a sample counts toward every part on its stack)",
        "",
        "| part | share |",
        "|---|---:|",
        *(f"| {part} | {count / max(total, 1):.1%} |" for part, count in parts.items()),
        "",
        "## Frames with the most samples of their own",
        "",
        "| share | frame |",
        "|---:|---|",
        *(f"| {count / max(total, 1):.1%} | `{frame}` |" for frame, count in own),
        "",
    ]
    out.with_suffix(".md").write_text("\n".join(lines))
    print(out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
