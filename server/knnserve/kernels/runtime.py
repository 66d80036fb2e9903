"""onnxruntime for the kernels: single-threaded sessions, the u8 x s8 exactness probe, and a fan-out pool.

Sessions run with one intra-op thread each; the kernels parallelise by handing independent pieces
(query chunks, groups of inverted lists) to a small pool of Python threads, one per FAISS thread.
Why: onnxruntime's own pool spins while waiting, and spinning threads beside FAISS's OpenMP
threads oversubscribe the cores; one thread per session also lets the thread count follow
``knnserve --threads`` per call instead of being fixed when a session is made.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

import numpy as np

from knnserve.kernels.onnx_proto import Node, ValueInfo, model_bytes
from knnserve.machine import usable_cores

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def onnxruntime_version() -> str | None:
    """The installed onnxruntime's version, or None when it cannot be imported."""
    try:
        import onnxruntime
    except ImportError:
        return None
    return str(onnxruntime.__version__)


def new_session(model: bytes) -> Any:
    """An onnxruntime CPU session for a serialized model: one thread, sequential, warnings off."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


@cache
def int8_gemm_exact() -> bool:
    """True when onnxruntime's MatMulInteger multiplies uint8 by int8 exactly on this CPU.

    Without VNNI (or AMX) x86 kernels pair products in int16 (VPMADDUBSW), which saturates at
    255*127*2 > 32767; the kernels are only exact where this probe sees no saturation.
    """
    if onnxruntime_version() is None:
        return False
    d = 256
    graph = model_bytes(
        [Node("MatMulInteger", ["A", "B"], ["Y"])],
        [ValueInfo("A", np.uint8, ["n", d]), ValueInfo("B", np.int8, [d, "m"])],
        [ValueInfo("Y", np.int32, ["n", "m"])],
    )
    rng = np.random.default_rng(0)
    a = np.full((64, d), 255, dtype=np.uint8)
    a[32:] = rng.integers(0, 256, (32, d), dtype=np.uint8)
    b = np.where(rng.random((d, 64)) < 0.5, -128, 127).astype(np.int8)
    b[:, 32:] = rng.integers(-128, 128, (d, 32), dtype=np.int8)
    try:
        got = new_session(graph).run(None, {"A": a, "B": b})[0]
    except Exception:  # an onnxruntime that cannot run the graph cannot run the kernels either
        return False
    return bool(np.array_equal(got, a.astype(np.int64) @ b.astype(np.int64)))


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=max(usable_cores(), 1), thread_name_prefix="knnserve-kernel")
        return _POOL


def fan_out(tasks: Sequence[Callable[[], None]]) -> None:
    """Run the tasks, in parallel on the kernel pool when there are several; re-raise the first failure."""
    if len(tasks) <= 1:
        for task in tasks:
            task()
        return
    futures = [_pool().submit(task) for task in tasks[1:]]
    tasks[0]()  # the calling thread takes a share instead of waiting idle
    for future in futures:
        future.result()


__all__ = ["fan_out", "int8_gemm_exact", "new_session", "onnxruntime_version"]
