"""Files knnserve writes for people: prediction CSVs and printable manifest summaries."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from knnserve.atomic import atomic_file
from knnserve.bundle import Manifest

PREDICTION_COLUMNS = ("row", "label", "class_name", "probability")


def write_predictions_csv(
    path: str | Path, heads: dict[str, tuple[np.ndarray, np.ndarray]], class_names: tuple[str, ...]
) -> None:
    """Write one CSV line per row: row number, then predicted label, class name and probability per head.

    ``heads`` maps a head name ("knn", "linear") to (predictions (n,), probabilities (n, C)). With one
    head the columns are ``row,label,class_name,probability``; with several, each head's columns are
    prefixed by its name (``knn_label,...,linear_label,...``). A row whose search found no neighbour
    has label -1, an empty class name and probability 0. The file is written to a temporary sibling
    and renamed, so a reader never sees half of it.
    """
    prefixes = [""] if len(heads) == 1 else [f"{name}_" for name in heads]
    columns = ["row"] + [f"{prefix}{column}" for prefix in prefixes for column in PREDICTION_COLUMNS[1:]]
    n = next(iter(heads.values()))[0].shape[0]
    with atomic_file(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        labels = {name: predictions.tolist() for name, (predictions, _) in heads.items()}
        for row in range(n):
            line: list[object] = [row]
            for name, (_, probabilities) in heads.items():
                label = labels[name][row]
                found = label >= 0
                line += [label, class_names[label] if found else "", f"{float(probabilities[row, label]):.6f}" if found else "0"]
            writer.writerow(line)


def _preprocessing(metadata: dict[str, Any]) -> str:
    if not metadata:
        return "raw (vectors indexed as they come)"
    config = metadata.get("config", {})
    steps = []
    if config.get("pca_dim"):
        steps.append(f"PCA to {config['pca_dim']} dims")
    if config.get("l2_normalize"):
        steps.append("L2-normalised (cosine)")
    return ", ".join(steps) or str(config)


def search_kernel(manifest: Manifest) -> str:
    """The search kernel a model loaded from this manifest gets on this machine (``knnserve.kernels``), one line."""
    from knnserve.kernels import plan_kernel

    index = manifest.index
    return plan_kernel(factory=index.factory, metric=index.metric, input_dtype=manifest.input_dtype,
                       preprocessed=bool(manifest.preprocessing), dim=index.dim).describe()


def manifest_summary(manifest: Manifest) -> list[tuple[str, Any]]:
    """The manifest's key facts as (label, value) pairs for a human-readable ``info``."""
    index = manifest.index
    rows: list[tuple[str, Any]] = [
        ("name", manifest.name),
        ("created", manifest.created_at.isoformat()),
        ("knnserve version", manifest.knnserve_version),
        ("input", f"{manifest.input_dtype} {tuple(manifest.input_shape)}"),
        ("classes", f"{len(manifest.class_names)}: {', '.join(manifest.class_names)}"),
        ("heads", ", ".join(manifest.heads)),
        ("features", "pixels (the input rows)" if manifest.extractor is None else
         f"extractor {manifest.extractor.describe()} ({manifest.extractor.file}, {manifest.extractor.onnx_bytes / 2**10:.0f} KiB)"),
        ("k-NN preprocessing", _preprocessing(manifest.preprocessing)),
        ("index spec", index.spec),
        ("faiss factory", index.factory),
        ("metric", index.metric),
        ("storage", index.storage),
        ("vectors", f"{index.ntotal} x {index.dim}"),
        ("index size", f"{index.serialized_bytes / 2**20:.1f} MiB ({index.serialized_bytes / max(index.ntotal, 1):.0f} B/vector)"),
        ("search kernel", search_kernel(manifest)),
        ("defaults", ", ".join(f"{key}={value}" for key, value in manifest.knn.set_fields().items())),
    ]
    if manifest.dataset is not None:
        data = manifest.dataset
        rows.append(("dataset", f"{data.name} ({data.n_train} train / {data.n_test} test, sha256 {data.checksum[:12]}…)"))
    if manifest.extractor is not None and manifest.extractor.parity is not None:
        parity = manifest.extractor.parity
        rows.append(("ONNX parity", f"max abs difference {parity.max_abs_diff:.2g} <= {parity.tolerance:g} on {parity.rows} "
                                    f"validation rows, {parity.knn_disagreements} different {parity.knn_k}-NN predictions"))
    if manifest.linear is not None:
        params = manifest.linear.get("params", {})
        rows.append(("linear head", f"{params.get('loss')} (lr={params.get('learning_rate')}, λ={params.get('reg_strength')}, {params.get('reg')})"))
    for key, value in manifest.metrics.items():
        if isinstance(value, (int, float, str)):
            rows.append((key, f"{value:.4f}" if isinstance(value, float) else value))
    return rows
