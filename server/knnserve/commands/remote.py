"""What ``knnserve classify`` and ``knnserve models`` do through the client (client errors propagate to the CLI)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import numpy as np

from knnserve_client import Client, KnnQuery, ModelInfo

# Rows per ClassifyStream message for `knnserve classify` (each is split further under the server's limits).
CLASSIFY_BATCH_ROWS = 1024


def describe_model(info: ModelInfo) -> str:
    """One line about a model, its name first (what ``knnserve models`` prints)."""
    shape = ",".join(str(s) for s in info.input_shape)
    versions = ",".join(str(v) for v in info.versions)
    space = info.features
    features = space.extractor if space.input == "extractor" else (space.input or "pixels")
    return (
        f"{info.name} version={info.version} versions={versions} input={info.input_dtype}[{shape}] "
        f"classes={len(info.class_names)} index={info.index.factory} metric={info.index.metric} "
        f"ntotal={info.index.ntotal} heads={','.join(info.heads)} k={info.defaults.k} "
        f"features={features} preprocessing={space.preprocessing or 'raw'} dim={space.dim}"
    )


def list_models(
    server: str, *, token: str | None = None, tls: bool | str | Path = False, timeout: float = 10.0,
    out: TextIO | None = None,
) -> list[ModelInfo]:
    """Print the served models, one a line, name first; return them."""
    with Client(server, timeout=timeout, token=token, tls=tls) as client:
        models = client.models()
    for info in models:
        print(describe_model(info), file=out or sys.stdout)
    return models


def classify_file(
    server: str,
    model: str,
    input_path: Path,
    out_path: Path,
    *,
    version: int | None = None,
    heads: Sequence[str] = ("knn",),
    query: KnnQuery = KnnQuery(),
    token: str | None = None,
    tls: bool | str | Path = False,
    timeout: float = 60.0,
    out: TextIO | None = None,
) -> int:
    """Classify the rows of a .npy or IDX file on a server over one ClassifyStream; write a CSV like ``knnserve predict``.

    Returns the number of rows written.
    """
    from knnserve.data import read_input_array
    from knnserve.outputs import write_predictions_csv

    x = read_input_array(input_path)
    parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {head: [] for head in heads}
    with Client(server, timeout=timeout, token=token, tls=tls) as client:
        info = client.model(model, version)
        n_classes = len(info.class_names)
        batches = (x[start : start + CLASSIFY_BATCH_ROWS] for start in range(0, max(len(x), 1), CLASSIFY_BATCH_ROWS))
        options = query.replace(top_n=n_classes).set_fields()
        for result in client.classify_batches(model, batches, version=info.version, heads=heads, **options):
            for head in heads:
                answer = result.knn if head == "knn" else result.linear
                assert answer is not None
                # top_n = every class: the full probability matrix.
                parts[head].append((answer.predictions, answer.class_scores(n_classes)))
    joined = {head: (np.concatenate([p for p, _ in chunks]), np.concatenate([q for _, q in chunks])) for head, chunks in parts.items()}
    write_predictions_csv(out_path, joined, info.class_names)
    rows = len(joined[heads[0]][0])
    print(f"wrote {rows} predictions ({', '.join(heads)}) from {model} version {info.version} to {out_path}", file=out or sys.stdout)
    return rows


__all__ = ["CLASSIFY_BATCH_ROWS", "classify_file", "describe_model", "list_models"]
