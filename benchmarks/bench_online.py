"""Learning while serving (docs/online.md): write latency against this machine's fsync, write throughput,
Classify latency beside writes, replay at start, kill -9 rounds, and online adds against a retrained bundle.

    flock /tmp/knnserve-bench.lock .venv/bin/python benchmarks/bench_online.py

Sections (``--sections``, default all), each against ``knnserve serve --online-dir`` subprocesses on
Fashion-MNIST pixels (Flat, exact L2), the logs in ``--log-dir`` (one filesystem for the fsync probe
and the logs):

* ``fsync``: p50 of write(1 KiB) + fdatasync on a file in the log folder (the floor of a durable write);
* ``add``: one client, one-row AddExamples one after another: p50/p99; target p50 <= 2 x fsync p50 + 0.5 ms;
* ``throughput``: 16 clients (threads of 4 processes) each sending 100-row AddExamples back to back: rows/s
  over the window; target >= 20,000;
* ``classify``: 4 one-row Classify clients: p99 without writes, then with one writer adding 100-row calls
  at half the measured add rate, then without again (the index is larger by then); target <= 1.3x;
* ``replay``: a log of 100,000 rows (1,000 records of 100) replayed onto the loaded bundle; target <= 5 s;
* ``crash``: 10 kill -9 rounds under 16 writers (benchmarks/online_crash.py, a 16-d model): acknowledged,
  present, duplicated;
* ``identical``: one class held out of training, its 6,000 training rows added online, the test split
  classified through the server; against a bundle trained on the same rows in the same order.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import Kind, run_load  # noqa: E402
from online_crash import crash_round  # noqa: E402
from servers import start_knnserve, stop  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ("fsync", "add", "throughput", "classify", "replay", "crash", "identical")
MODEL = "fmnist"
TOKEN = "bench-write-token"
HELD_OUT = 9  # ankle boot
# One-row Classify clients of the classify section: enough to keep the server busy, not so many that
# the 2 cores are saturated by searches alone (then any extra work shows as queueing).
CLASSIFY_CLIENTS = 4


def percentile_ms(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q) * 1e3)


def fsync_p50(folder: Path, repeats: int = 300, *, busy: bool = False) -> dict[str, float]:
    """write(1 KiB) + fdatasync latency of a file in ``folder``: p50 and p99 in ms.

    ``busy``: with a thread of this process waking every 0.1 ms meanwhile, as a server's threads do.
    Measured here (a VM): an idle process's fdatasync p50 was about 3.9 ms, a busy one's 0.15 ms —
    most of an idle fdatasync is the wake-up of an idle CPU, not the disk.
    """
    path = folder / "fsync-probe"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    times = []
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            time.sleep(0.0001)

    spinner = threading.Thread(target=spin, daemon=True)
    if busy:
        spinner.start()
    try:
        for number in range(repeats):
            os.pwrite(fd, os.urandom(1024), number * 1024)
            started = time.perf_counter()
            os.fdatasync(fd)
            times.append(time.perf_counter() - started)
    finally:
        stop.set()
        os.close(fd)
        path.unlink()
    return {"p50_ms": percentile_ms(times, 50), "p99_ms": percentile_ms(times, 99)}


def write_bundle(root: Path, x: np.ndarray, y: np.ndarray, names: tuple[str, ...], version: int = 1) -> None:
    from knnserve.model import KNNModel

    model = KNNModel.fit(x, y, class_names=names, index="flat")
    model.save(root / MODEL / str(version), name=MODEL)


SERVE_EXTRA: list[str] = []  # --serve-arg values, passed to every server of the Fashion-MNIST sections


def serve(models: Path, logs: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    token = models.parent / "write-token"
    token.write_text(TOKEN)
    return start_knnserve("--models", str(models), "--online-dir", str(logs), "--write-token-file", str(token),
                          *SERVE_EXTRA, *extra)


def fresh(models: Path, logs: Path) -> None:
    shutil.rmtree(logs, ignore_errors=True)
    for version in sorted((models / MODEL).iterdir()):
        if version.name != "1":
            shutil.rmtree(version)


def add_latency(target: str, rows: np.ndarray, calls: int = 300) -> dict[str, float]:
    from knnserve_client import Client

    times = []
    with Client(target, token=TOKEN) as client:
        for number in range(calls + 20):
            started = time.perf_counter()
            client.add_examples(MODEL, rows[number % len(rows)][None], ["added"])
            if number >= 20:
                times.append(time.perf_counter() - started)
    return {"calls": calls, "p50_ms": percentile_ms(times, 50), "p99_ms": percentile_ms(times, 99)}


def _adder(target: str, rows: np.ndarray, per_call: int, begin: float, end: float, pace_s: float, out: Any) -> None:
    """One process of writers: threads sending ``per_call``-row adds from ``begin`` to ``end`` (paced if pace_s)."""
    from knnserve_client import Client

    counts: list[int] = []
    lock = threading.Lock()

    def writer(number: int) -> None:
        done = 0
        with Client(target, token=TOKEN, timeout=60) as client:
            time.sleep(max(0.0, begin - 1.0 - time.time()))
            call = number
            while time.time() < end:
                start = (call * per_call) % (len(rows) - per_call)
                sent_at = time.time()
                client.add_examples(MODEL, rows[start : start + per_call], ["added"] * per_call)
                if begin <= sent_at:
                    done += per_call
                call += 1
                if pace_s:
                    time.sleep(max(0.0, pace_s - (time.time() - sent_at)))
        with lock:
            counts.append(done)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(out[1])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out[0].put(sum(counts))


def run_adders(target: str, rows: np.ndarray, *, clients: int, processes: int, per_call: int, seconds: float,
               pace_s: float = 0.0, warmup: float = 2.0) -> float:
    """Rows/s that ``clients`` writers (in ``processes`` processes) get acknowledged over ``seconds``."""
    context = mp.get_context("spawn")
    queue = context.Queue()
    begin = time.time() + 3.0 + warmup
    end = begin + seconds
    shares = [clients // processes + (p < clients % processes) for p in range(processes)]
    workers = [context.Process(target=_adder, args=(target, rows, per_call, begin, end, pace_s, (queue, share)))
               for share in shares if share]
    for worker in workers:
        worker.start()
    total = sum(queue.get(timeout=seconds + 300) for _ in workers)
    for worker in workers:
        worker.join(60)
    return total / seconds


def section_classify(target: str, queries: np.ndarray, rows: np.ndarray, add_rate: float, seconds: float) -> dict[str, Any]:
    """Classify p99 without writes, with writes at ``add_rate`` rows/s (100-row calls), and without again."""
    kinds = [Kind("classify", CLASSIFY_CLIENTS)]
    result: dict[str, Any] = {}

    def measure(label: str) -> None:
        reports = run_load(target, queries, kinds, model=MODEL, warmup=2.0, duration=seconds, processes=2)
        report = reports["classify"]
        result[label] = {"p50_ms": report.percentile_ms(50), "p99_ms": report.percentile_ms(99),
                         "requests_per_s": report.rate(seconds)}

    measure("without_writes_before")
    writers = 4
    pace = writers * 100 / add_rate  # seconds between one writer's calls
    added: list[float] = []
    adder = threading.Thread(target=lambda: added.append(run_adders(
        target, rows, clients=writers, processes=1, per_call=100, seconds=seconds + 4.0, pace_s=pace, warmup=0.0)))
    adder.start()
    measure("with_writes")
    adder.join()
    result["with_writes"]["add_rows_per_s"] = added[0]
    measure("without_writes_after")
    return result


def section_replay(models: Path, x: np.ndarray, rows: int = 100_000, per_record: int = 100) -> dict[str, Any]:
    """Seconds to replay a log of ``rows`` rows onto the loaded bundle (and to load the bundle)."""
    from knnserve.model import KNNModel
    from knnserve.online.live import LiveModel

    folder = Path(tempfile.mkdtemp(prefix="replay-", dir=models.parent))
    writer = LiveModel(KNNModel.load(models / MODEL / "1"), folder / "log.wal", sync=False)
    rng = np.random.default_rng(0)
    for start in range(0, rows, per_record):
        chosen = x[rng.integers(0, len(x), per_record)]
        writer.add(writer.model.prepare(chosen), ["added"] * per_record)
    writer.close()
    log_bytes = (folder / "log.wal").stat().st_size
    loads, replays = [], []
    for _ in range(3):
        started = time.perf_counter()
        model = KNNModel.load(models / MODEL / "1", mmap=False)
        loaded = time.perf_counter()
        live = LiveModel(model, folder / "log.wal")
        replays.append(time.perf_counter() - loaded)
        loads.append(loaded - started)
        assert live.added == rows
        live.close()
        del live, model
    shutil.rmtree(folder)
    return {"rows": rows, "records": rows // per_record, "log_mb": log_bytes / 1e6,
            "replay_s_median": statistics.median(replays), "replay_s": replays,
            "bundle_load_s_median": statistics.median(loads)}


def section_crash(work: Path, rounds: int, writers: int) -> dict[str, Any]:
    """kill -9 rounds (online_crash.py) against a 16-d Flat model."""
    from knnserve.model import KNNModel

    rng = np.random.default_rng(1)
    models = work / "crash-models"
    x = rng.normal(size=(2000, 16)).astype(np.float32)
    KNNModel.fit(x, rng.integers(0, 4, 2000), class_names=("a", "b", "c", "d"), index="flat").save(models / "m" / "1", name="m")
    token = work / "crash-token"
    token.write_text(TOKEN)
    results = []
    for number in range(rounds):
        counts = crash_round(models, work / "crash-logs", token, model="m", dim=16, round_number=number,
                             writers=writers, write_s=1.5)
        results.append(vars(counts))
        print(f"  crash round {number}: {vars(counts)}", flush=True)
    return {"rounds": results,
            "acknowledged": sum(r["acknowledged"] for r in results), "present": sum(r["present"] for r in results),
            "missing": sum(r["missing"] for r in results), "duplicated": sum(r["duplicated"] for r in results),
            "in_flight_at_kill": sum(r["in_flight"] for r in results)}


def section_identical(work: Path, data: Any) -> dict[str, Any]:
    """Hold one class out, add its training rows online, classify the test split; compare with a bundle of the same rows."""
    from knnserve.model import KNNModel
    from knnserve_client import Client, KnnQuery

    names = data.class_names
    keep = data.y_train != HELD_OUT
    kept_names = tuple(n for c, n in enumerate(names) if c != HELD_OUT)
    remap = {c: i for i, c in enumerate(c for c in range(len(names)) if c != HELD_OUT)}
    y_kept = np.array([remap[int(c)] for c in data.y_train[keep]])
    models, logs = work / "identical-models", work / "identical-logs"
    write_bundle(models, data.x_train[keep], y_kept, kept_names)
    held = data.x_train[~keep]
    process, target = serve(models, logs)
    try:
        with Client(target, token=TOKEN, timeout=300) as client:
            for start in range(0, len(held), 1000):
                client.add_examples(MODEL, held[start : start + 1000], [names[HELD_OUT]] * len(held[start : start + 1000]))
            online = client.classify(MODEL, data.x_test, k=5)
            served_names = client.model(MODEL).class_names
    finally:
        stop(process)
    all_names = (*kept_names, names[HELD_OUT])
    x_same_order = np.concatenate([data.x_train[keep], held])
    y_same_order = np.concatenate([y_kept, np.full(len(held), len(kept_names))])
    retrained = KNNModel.fit(x_same_order, y_same_order, class_names=all_names, index="flat")
    offline = retrained.classify(data.x_test, KnnQuery(k=5))
    online_names = np.array(served_names)[online.predictions]
    offline_names = np.array(all_names)[offline.predictions]
    truth = np.array(names)[data.y_test]
    return {"held_out_class": names[HELD_OUT], "rows_added": int(len(held)), "test_rows": int(len(data.x_test)),
            "identical_predictions": int((online_names == offline_names).sum()),
            "different_predictions": int((online_names != offline_names).sum()),
            "online_accuracy": float((online_names == truth).mean()),
            "retrained_accuracy": float((offline_names == truth).mean())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--log-dir", type=Path, default=ROOT / ".bench-online")
    parser.add_argument("--seconds", type=float, default=8.0, help="measurement window of the load sections")
    parser.add_argument("--crash-rounds", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None, help="JSON results file")
    parser.add_argument("--serve-arg", action="append", default=[],
                        help="extra `knnserve serve` argument for the Fashion-MNIST servers, e.g. --serve-arg=--kernel=faiss")
    args = parser.parse_args()
    SERVE_EXTRA.extend(args.serve_arg)
    sections = args.sections.split(",")
    from knnserve.data import load_dataset

    work = args.log_dir
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    data = load_dataset("fashion-mnist", download=False)
    models, logs = work / "models", work / "logs"
    x = data.x_train
    results: dict[str, Any] = {
        "command": " ".join(sys.argv), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True, text=True).stdout.strip(),
        "cores": os.cpu_count(), "load_before": os.getloadavg(),
    }
    if {"add", "throughput", "classify", "replay"} & set(sections):
        write_bundle(models, x, data.y_train, data.class_names)
    fsync = fsync_p50(work)
    results["fsync"] = fsync
    results["fsync_busy_process"] = fsync_p50(work, busy=True)
    print("fsync", fsync, "busy process", results["fsync_busy_process"], flush=True)
    if "add" in sections:
        fresh(models, logs)
        process, target = serve(models, logs)
        try:
            results["add"] = add_latency(target, data.x_test)
        finally:
            stop(process)
        results["fsync_after_add"] = fsync_p50(work)
        results["add"]["target_ms"] = 2 * fsync["p50_ms"] + 0.5
        print("add", results["add"], "fsync after", results["fsync_after_add"], flush=True)
    add_rate = None
    if "throughput" in sections:
        fresh(models, logs)
        process, target = serve(models, logs)
        try:
            add_rate = run_adders(target, x, clients=16, processes=4, per_call=100, seconds=args.seconds)
        finally:
            stop(process)
        results["throughput"] = {"clients": 16, "rows_per_call": 100, "rows_per_s": add_rate, "target": 20_000}
        print("throughput", results["throughput"], flush=True)
    if "classify" in sections:
        fresh(models, logs)
        process, target = serve(models, logs)
        try:
            rate = (add_rate or 20_000) / 2
            results["classify"] = section_classify(target, data.x_test[:2000], x, rate, args.seconds)
        finally:
            stop(process)
        with_p99 = results["classify"]["with_writes"]["p99_ms"]
        results["classify"]["ratio_vs_before"] = with_p99 / results["classify"]["without_writes_before"]["p99_ms"]
        results["classify"]["ratio_vs_after"] = with_p99 / results["classify"]["without_writes_after"]["p99_ms"]
        print("classify", results["classify"], flush=True)
    if "replay" in sections:
        results["replay"] = section_replay(models, x)
        print("replay", results["replay"], flush=True)
    if "crash" in sections:
        results["crash"] = section_crash(work, args.crash_rounds, 16)
        print("crash", {k: v for k, v in results["crash"].items() if k != "rounds"}, flush=True)
    if "identical" in sections:
        results["identical"] = section_identical(work, data)
        print("identical", results["identical"], flush=True)
    results["load_after"] = os.getloadavg()
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
