"""The Open Inference Protocol (KServe v2) against knnserve.v1, and its REST binding against its gRPC one: same
server, same model, same one-row requests, same concurrency, one run. Rounds alternate (A, B, B, A, ...) so drift
on a shared machine falls on both; ratios are of medians.

    flock /tmp/knnserve-bench.lock .venv/bin/python benchmarks/bench_open_inference.py --index hnsw

Sections (``--sections``, default all):

* ``v1``: v2 (tritonclient.grpc) / v1 (knnserve client) requests/s, 16 one-row clients, two request shapes:
  predictions only (v1 top_n=0; v2 outputs=[predictions]) and the protocol's default answer (v2 with no
  outputs named: predictions + the (n, C) scores; v1 top_n=C). Target: v2 >= 0.9x v1.
* ``rest``: REST with binary data (tritonclient.http) / gRPC v2 (tritonclient.grpc) requests/s, 16 one-row
  clients, predictions only. Target: >= 0.7x.
* ``latency``: one client, one request at a time: REST JSON infer of one 28x28 image (tritonclient.http with
  binary_data=False, and a pre-encoded body over http.client, which leaves out the client library's own
  cost) against gRPC v2 (tritonclient.grpc), p50; and the bare round trips (GET /v2/health/live against
  ServerLive), the HTTP stack's own cost. Target: REST JSON p50 - gRPC v2 p50 <= 0.5 ms.
* ``predictions``: the whole Fashion-MNIST test split through REST (binary and JSON), gRPC v2 and Classify.
  Target: identical.

The server is ``knnserve serve --model BUNDLE --http-port P`` in a process of its own and the load comes from
client processes (loadgen.py); nothing here depends on how the server is built inside.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_load import ensure_bundle  # noqa: E402
from loadgen import Kind, run_load_probed  # noqa: E402
from servers import cpu_seconds, free_port, start_knnserve, stop  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CLASSES = 10
MODEL = "fashion"
SECTIONS = ("v1", "rest", "latency", "predictions")


def comparisons(clients: int, rest: str, sections: set[str]) -> dict[str, tuple[Kind, Kind]]:
    """Comparison -> (baseline kind, measured kind), each sent by ``clients`` one-row clients."""
    pairs: dict[str, tuple[Kind, Kind]] = {}
    if "v1" in sections:
        pairs["v2 / v1, predictions only"] = (Kind("v1", clients, {"top_n": 0}),
                                              Kind("v2", clients, {"outputs": ["predictions"]}, protocol="v2"))
        pairs["v2 / v1, predictions + scores"] = (Kind("v1", clients, {"top_n": CLASSES}), Kind("v2", clients, {}, protocol="v2"))
    if "rest" in sections:
        pairs["REST binary / gRPC v2, predictions only"] = (
            Kind("v2", clients, {"outputs": ["predictions"]}, protocol="v2"),
            Kind("rest", clients, {"outputs": ["predictions"], "binary": True}, protocol="rest", target=rest))
    return pairs


# -- one client, one request at a time -----------------------------------------------------------


def _latency_worker(grpc_target: str, rest_target: str, x: np.ndarray, requests: int, blocks: int, out: Any) -> None:
    """Latencies (s) of each call kind, sent in alternating blocks from this one process."""
    import http.client

    import tritonclient.grpc as triton_grpc
    import tritonclient.http as triton_http

    grpc_client = triton_grpc.InferenceServerClient(grpc_target)
    http_client = triton_http.InferenceServerClient(rest_target)
    host, port = rest_target.rsplit(":", 1)
    raw = http.client.HTTPConnection(host, int(port))
    bodies = [json.dumps({"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 28, 28], "data": row[None].tolist()}],
                          "outputs": [{"name": "predictions"}]}).encode() for row in x[:256]]

    def grpc_infer(i: int) -> None:
        tensor = triton_grpc.InferInput("images", [1, 28, 28], "UINT8")
        tensor.set_data_from_numpy(x[i:i + 1])
        grpc_client.infer(MODEL, [tensor], outputs=[triton_grpc.InferRequestedOutput("predictions")]).as_numpy("predictions")

    def rest_json(i: int) -> None:
        tensor = triton_http.InferInput("images", [1, 28, 28], "UINT8")
        tensor.set_data_from_numpy(x[i:i + 1], binary_data=False)
        http_client.infer(MODEL, [tensor], outputs=[triton_http.InferRequestedOutput("predictions", binary_data=False)]
                          ).as_numpy("predictions")

    def rest_json_raw(i: int) -> None:
        raw.request("POST", f"/v2/models/{MODEL}/infer", body=bodies[i % len(bodies)])
        response = raw.getresponse()
        json.loads(response.read())["outputs"][0]["data"]
        assert response.status == 200

    def rest_binary(i: int) -> None:
        tensor = triton_http.InferInput("images", [1, 28, 28], "UINT8")
        tensor.set_data_from_numpy(x[i:i + 1], binary_data=True)
        http_client.infer(MODEL, [tensor], outputs=[triton_http.InferRequestedOutput("predictions", binary_data=True)]
                          ).as_numpy("predictions")

    calls = {"gRPC v2 infer": grpc_infer, "REST JSON infer (tritonclient.http)": rest_json,
             "REST JSON infer (pre-encoded body, http.client)": rest_json_raw, "REST binary infer (tritonclient.http)": rest_binary,
             "gRPC ServerLive": lambda i: grpc_client.is_server_live(), "REST GET /v2/health/live": lambda i: http_client.is_server_live()}
    latencies: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():  # warm-up: connections, caches
        for i in range(100):
            call(i)
    names = list(calls)
    per_block = max(1, requests // blocks)
    for block in range(blocks):
        order = names[block % len(names):] + names[:block % len(names)]
        for name in order:
            call = calls[name]
            for j in range(per_block):
                i = (block * per_block + j) % len(x)
                started = time.perf_counter()
                call(i)
                latencies[name].append(time.perf_counter() - started)
    out.put(latencies)


# -- the whole test split ---------------------------------------------------------------------------


def _predictions_worker(grpc_target: str, rest_target: str, x: np.ndarray, rows: int, out: Any) -> None:
    """Predictions of every row through REST (binary, JSON) and gRPC v2 (tritonclient), ``rows`` a request."""
    import tritonclient.grpc as triton_grpc
    import tritonclient.http as triton_http

    grpc_client = triton_grpc.InferenceServerClient(grpc_target)
    http_client = triton_http.InferenceServerClient(rest_target, network_timeout=300.0)
    found: dict[str, list[np.ndarray]] = {"REST binary": [], "REST JSON": [], "gRPC v2": []}
    for start in range(0, len(x), rows):
        chunk = x[start:start + rows]
        for name, binary in (("REST binary", True), ("REST JSON", False)):
            tensor = triton_http.InferInput("images", list(chunk.shape), "UINT8")
            tensor.set_data_from_numpy(chunk, binary_data=binary)
            result = http_client.infer(MODEL, [tensor], outputs=[triton_http.InferRequestedOutput("predictions", binary_data=binary)])
            found[name].append(result.as_numpy("predictions"))
        tensor = triton_grpc.InferInput("images", list(chunk.shape), "UINT8")
        tensor.set_data_from_numpy(chunk)
        found["gRPC v2"].append(grpc_client.infer(MODEL, [tensor], outputs=[triton_grpc.InferRequestedOutput("predictions")])
                                .as_numpy("predictions"))
    out.put({name: np.concatenate(parts) for name, parts in found.items()})


def in_child(target: Any, *args: Any) -> Any:
    """Run ``target(*args, queue)`` in a fresh interpreter (no faiss, no server state) and return what it put."""
    context = mp.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=target, args=(*args, queue))
    child.start()
    result = queue.get(timeout=3600)
    child.join(60)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--index", default="flat", help="index of the bundle (default: flat)")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated among {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="rounds per comparison and protocol (default: 3)")
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds per round")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--latency-requests", type=int, default=2000, help="requests per kind in the latency section")
    parser.add_argument("--batch-rows", type=int, default=100, help="rows per request in the predictions section")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/knnserve-bench-load"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    sections = {name.strip() for name in args.sections.split(",") if name.strip()}
    if not sections <= set(SECTIONS):
        parser.error(f"--sections: expected names among {', '.join(SECTIONS)}")

    from knnserve.data import load_dataset
    from knnserve.machine import cpu_model, usable_cores

    data = load_dataset("fashion-mnist", download=False)
    x = data.x_test
    bundle = ensure_bundle(args.work_dir, args.index)
    http_port = free_port()
    process, target = start_knnserve("--model", str(bundle), "--http-port", str(http_port))
    rest = f"127.0.0.1:{http_port}"
    pairs = comparisons(args.clients, rest, sections)
    rates: dict[str, dict[str, list[float]]] = {name: {"base": [], "other": []} for name in pairs}
    p99: dict[str, dict[str, list[float]]] = {name: {"base": [], "other": []} for name in pairs}
    cpu_ms: dict[str, dict[str, list[float]]] = {name: {"base": [], "other": []} for name in pairs}
    failures: dict[str, dict[str, int]] = {}
    latencies: dict[str, list[float]] = {}
    predictions: dict[str, np.ndarray] = {}
    try:
        for name, (base, other) in pairs.items():
            for round_number in range(args.rounds):
                order = (("base", base), ("other", other)) if round_number % 2 == 0 else (("other", other), ("base", base))
                for side, kind in order:
                    reports, (cpu_start, cpu_stop) = run_load_probed(
                        target, x, [kind], model=MODEL, warmup=args.warmup, duration=args.duration,
                        processes=args.processes, probe=lambda: cpu_seconds(process.pid))
                    report = reports[kind.name]
                    rates[name][side].append(report.rate(args.duration))
                    cpu_ms[name][side].append((cpu_stop - cpu_start) * 1e3 / max(report.completed, 1))
                    p99[name][side].append(report.percentile_ms(99))
                    for code, count in report.failures.items():
                        failures.setdefault(f"{name} {kind.name}", {}).setdefault(code, 0)
                        failures[f"{name} {kind.name}"][code] += count
                    print(name, kind.name, f"{rates[name][side][-1]:.1f} rps", flush=True)
        if "latency" in sections:
            latencies = in_child(_latency_worker, target, rest, x, args.latency_requests, 10)
            print({k: round(float(np.median(v)) * 1e3, 3) for k, v in latencies.items()}, flush=True)
        if "predictions" in sections:
            predictions = in_child(_predictions_worker, target, rest, x, args.batch_rows)
            from knnserve_client import Client

            with Client(target, timeout=300) as client:
                predictions["Classify (knnserve.v1)"] = client.classify(MODEL, x).knn.predictions
    finally:
        stop(process)
    stamp = datetime.now(timezone.utc)
    lines = [
        f"# Open Inference Protocol: v2 against knnserve.v1, REST against gRPC: {args.index} ({stamp:%Y-%m-%d})",
        "",
        f"- command: `flock /tmp/knnserve-bench.lock .venv/bin/python benchmarks/bench_open_inference.py {' '.join(sys.argv[1:])}`",
        f"- machine: {cpu_model()}, {usable_cores()} cores, shared by the server and the load processes; "
        f"{stamp:%Y-%m-%d %H:%M} UTC; load average at the end {'/'.join(f'{v:.2f}' for v in os.getloadavg())}",
        f"- server: `knnserve serve --model` a Fashion-MNIST bundle (60k raw pixels, index {args.index}, k=5) "
        "`--http-port P`, default settings, one process",
        f"- load: {args.clients} one-row clients in {args.processes} processes (v1: knnserve_client.Client; v2: "
        f"tritonclient.grpc 2.41.0; REST: tritonclient.http 2.41.0), UINT8 input; {args.rounds} rounds per comparison "
        f"and side, alternating, {args.warmup:g} s warm-up + {args.duration:g} s measured each",
        "",
    ]
    if pairs:
        lines += [
            "| comparison | baseline requests/s (median) | measured requests/s (median) | measured / baseline | baseline p99 ms | "
            "measured p99 ms | server CPU ms/request baseline | measured | ratio | rounds baseline | rounds measured |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
        ]
        for name in pairs:
            base, other = statistics.median(rates[name]["base"]), statistics.median(rates[name]["other"])
            c1, c2 = statistics.median(cpu_ms[name]["base"]), statistics.median(cpu_ms[name]["other"])
            lines.append(
                f"| {name} | {base:.1f} | {other:.1f} | **{other / base:.3f}x** | {statistics.median(p99[name]['base']):.1f} | "
                f"{statistics.median(p99[name]['other']):.1f} | {c1:.3f} | {c2:.3f} | {c2 / c1:.2f}x | "
                f"{', '.join(f'{r:.0f}' for r in rates[name]['base'])} | {', '.join(f'{r:.0f}' for r in rates[name]['other'])} |")
        lines += ["", f"- failures: {failures or 'none'}",
                  "- targets: v2 / v1 >= 0.9 (both shapes); REST binary / gRPC v2 >= 0.7",
                  "- server CPU per request: utime + stime of the server process over the window / requests completed "
                  "(/proc); unlike requests/s it does not move with the CPU the client libraries take on the same cores", ""]
    if latencies:
        grpc_p50 = float(np.median(latencies["gRPC v2 infer"])) * 1e3
        lines += [f"## One client, one request at a time ({args.latency_requests} requests per kind in 10 alternating blocks)", "",
                  "| call | p50 ms | p90 ms | p99 ms | p50 - gRPC v2 infer p50 ms |", "|---|---:|---:|---:|---:|"]
        for name, values in latencies.items():
            p50, p90, p99v = (float(np.percentile(values, q)) * 1e3 for q in (50, 90, 99))
            lines.append(f"| {name} | {p50:.3f} | {p90:.3f} | {p99v:.3f} | {p50 - grpc_p50:+.3f} |")
        lines += ["", "- target: REST JSON infer of one 28x28 image p50 - gRPC v2 p50 <= 0.5 ms", ""]
    if predictions:
        reference = predictions["Classify (knnserve.v1)"]
        lines += [f"## Predictions over the whole test split ({len(x)} rows, {args.batch_rows} rows a request)", "",
                  "| binding | rows | differing from Classify | accuracy |", "|---|---:|---:|---:|"]
        for name, values in predictions.items():
            lines.append(f"| {name} | {len(values)} | {int(np.sum(values != reference))} | {float(np.mean(values == data.y_test)):.4f} |")
        identical = all(np.array_equal(values, reference) for values in predictions.values())
        lines += ["", f"- identical: **{'yes' if identical else 'NO'}** (target: identical)", ""]
    text = "\n".join(lines)
    print(text)
    out = args.out or ROOT / "benchmarks" / "results" / f"open-inference-{args.index}-{stamp:%Y-%m-%d}.md"
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps({
        "rates": rates, "p99_ms": p99, "server_cpu_ms": cpu_ms, "failures": failures,
        "latency_p50_ms": {k: float(np.median(v)) * 1e3 for k, v in latencies.items()},
        "predictions_differing": {k: int(np.sum(v != predictions["Classify (knnserve.v1)"])) for k, v in predictions.items()},
    }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
