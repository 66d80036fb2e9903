"""The benchmarks' servers: ``knnserve serve`` started on a free port and waited for, and what a
server's processes use, read from /proc (CPU time, resident and proportional memory).

Every benchmark that drives a server starts it here, so they all wait for the same thing: the
grpc.health.v1 "" service SERVING, which knnserve reports once its models are loaded (in every
revision the A/B scripts compare against).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_serving(target: str, process: subprocess.Popen[bytes], what: str, timeout_s: float = 300) -> None:
    """Return once health "" at ``target`` says SERVING; kill ``process`` and raise if it exits or time runs out."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                if stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2).status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"{what} did not start")
            time.sleep(0.2)


def start_knnserve(*args: str, env: Mapping[str, str] | None = None, what: str = "knnserve server",
                   timeout_s: float = 300) -> tuple[subprocess.Popen[bytes], str]:
    """``knnserve serve ARGS`` on a free 127.0.0.1 port, logging warnings only; returns once it serves."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "knnserve.cli", "serve", *args, "--port", str(port),
                                "--log-level", "WARNING"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = f"127.0.0.1:{port}"
    wait_until_serving(target, process, what, timeout_s)
    return process, target


def stop(process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    """SIGTERM (the server drains and stops), then SIGKILL if it takes longer than ``timeout_s``."""
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(30)


@contextmanager
def running_knnserve(*args: str, env: Mapping[str, str] | None = None,
                     what: str = "knnserve server") -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """:func:`start_knnserve` for the length of a ``with`` block."""
    process, target = start_knnserve(*args, env=env, what=what)
    try:
        yield process, target
    finally:
        stop(process)


# -- the server's processes, from /proc ----------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """``pid`` and every descendant (a --workers server's worker processes)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo.extend(int(child) for child in task.read_text().split())
            except OSError:
                pass
    return found


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its descendants (fields 14 and 15 of /proc/PID/stat)."""
    total = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def memory_mb(pid: int) -> tuple[float, float]:
    """(RSS summed, PSS summed) over ``pid`` and its descendants, MB (/proc/PID/smaps_rollup)."""
    rss = pss = 0
    for member in process_tree(pid):
        try:
            lines = Path(f"/proc/{member}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            name, _, rest = line.partition(":")
            if name == "Rss":
                rss += int(rest.split()[0])
            elif name == "Pss":
                pss += int(rest.split()[0])
    return rss / 1024, pss / 1024


__all__ = ["cpu_seconds", "free_port", "memory_mb", "process_tree", "running_knnserve", "start_knnserve", "stop",
           "wait_until_serving"]
