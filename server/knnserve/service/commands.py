"""What ``knnserve serve``, ``classify`` and ``models`` do; cli.py parses arguments and calls these."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

import numpy as np

from knnserve.service.config import ServeConfig
from knnserve.service.logs import configure_logging
from knnserve_client import Client, KnnServeClientError, ModelInfo

# Rows per ClassifyStream message for `knnserve classify` (each is split further under the server's limits).
CLASSIFY_BATCH_ROWS = 1024


def run_serve(config: ServeConfig, *, log_level: str = "INFO", json_logs: bool = True) -> int:
    """Serve until SIGTERM/SIGINT (SIGHUP reloads the models); returns the exit code."""
    from knnserve.service.server import KnnServer

    configure_logging(log_level, json_lines=json_logs)
    KnnServer(config).run()
    return 0


def describe_model(info: ModelInfo) -> str:
    """One line about a model, its name first (what ``knnserve models`` prints)."""
    shape = ",".join(str(s) for s in info.input_shape)
    versions = ",".join(str(v) for v in info.versions)
    return (
        f"{info.name} version={info.version} versions={versions} input={info.input_dtype}[{shape}] "
        f"classes={len(info.class_names)} index={info.index.factory} metric={info.index.metric} "
        f"ntotal={info.index.ntotal} heads={','.join(info.heads)} k={info.defaults.k}"
    )


def _client_error(error: KnnServeClientError, err: TextIO | None) -> int:
    print(f"knnserve: error: {error}", file=err or sys.stderr)
    return 1


def run_models(
    server: str,
    *,
    token: str | None = None,
    tls: bool | str | Path = False,
    timeout: float = 10.0,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Print the served models, one a line, name first."""
    try:
        with Client(server, timeout=timeout, token=token, tls=tls) as client:
            for info in client.models():
                print(describe_model(info), file=out or sys.stdout)
    except KnnServeClientError as error:
        return _client_error(error, err)
    return 0


def run_classify(
    server: str,
    model: str,
    input_path: Path,
    out_path: Path,
    *,
    version: int | None = None,
    method: str = "knn",
    k: int | None = None,
    weights: str | None = None,
    tie_break: str | None = None,
    nprobe: int | None = None,
    ef_search: int | None = None,
    token: str | None = None,
    tls: bool | str | Path = False,
    timeout: float = 60.0,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Classify the rows of a .npy or IDX file on a server; write a CSV like ``knnserve predict``.

    ``method`` is "knn", "linear" or "both"; the rows travel over one ClassifyStream.
    """
    from knnserve.data import read_input_array
    from knnserve.outputs import write_predictions_csv

    heads = ("knn", "linear") if method == "both" else (method,)
    x = read_input_array(input_path)
    parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {head: [] for head in heads}
    try:
        with Client(server, timeout=timeout, token=token, tls=tls) as client:
            info = client.model(model, version)
            n_classes = len(info.class_names)
            batches = (x[start : start + CLASSIFY_BATCH_ROWS] for start in range(0, max(len(x), 1), CLASSIFY_BATCH_ROWS))
            for result in client.classify_batches(
                model, batches, version=info.version, heads=heads, k=k, weights=weights, tie_break=tie_break,
                nprobe=nprobe, ef_search=ef_search, top_n=n_classes,
            ):
                for head in heads:
                    answer = result.knn if head == "knn" else result.linear
                    assert answer is not None
                    # top_n = every class: scatter the sorted scores back into a full probability matrix.
                    full = np.zeros((len(answer.predictions), n_classes), np.float32)
                    np.put_along_axis(full, answer.top_classes.astype(np.int64), answer.top_scores, axis=1)
                    parts[head].append((answer.predictions, full))
    except KnnServeClientError as error:
        return _client_error(error, err)
    joined = {head: (np.concatenate([p for p, _ in chunks]), np.concatenate([q for _, q in chunks])) for head, chunks in parts.items()}
    write_predictions_csv(out_path, joined, info.class_names)
    rows = len(joined[heads[0]][0])
    print(f"wrote {rows} predictions ({', '.join(heads)}) from {model} version {info.version} to {out_path}", file=out or sys.stdout)
    return 0


__all__ = ["describe_model", "run_classify", "run_models", "run_serve"]