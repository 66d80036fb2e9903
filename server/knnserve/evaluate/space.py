"""Feature spaces: the rows an index actually searches (raw input, or a bundle's preprocessed features).

Recall is only meaningful against exact search *in the space the index searches*. Indexes built
from ``--index`` specs search the raw rows; a trained bundle may first run its feature extractor
(a CNN's embedding) and apply its k-NN preprocessing (PCA, L2-normalisation), so its ground truth is
computed on the same transform of the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from knnserve.bundle import Manifest
from knnserve.errors import BundleError
from knnserve.evaluate.workload import Workload
from knnserve.model import KNNModel

RAW = "raw"
TRANSFORM_CHUNK_ROWS = 8192


@dataclass(frozen=True, eq=False)
class FeatureSpace:
    """Base and query rows as an index searches them, and the metric it searches them with."""

    key: str
    description: str
    base: np.ndarray
    queries: np.ndarray
    metric: str

    @property
    def dim(self) -> int:
        """Dimension of the rows."""
        return int(self.base.shape[1])


def raw_space(workload: Workload, metric: str) -> FeatureSpace:
    """The workload's rows as they are."""
    return FeatureSpace(RAW, f"raw input rows ({workload.dim} dims)", workload.base, workload.queries, metric)


def _transform(model: KNNModel, rows: np.ndarray) -> np.ndarray:
    parts = [model.vectors(model.prepare(rows[s : s + TRANSFORM_CHUNK_ROWS])) for s in range(0, rows.shape[0], TRANSFORM_CHUNK_ROWS)]
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def model_space(model: KNNModel, workload: Workload, key: str) -> FeatureSpace:
    """The space a loaded bundle searches: its preprocessing applied to the workload's rows (raw when it has none)."""
    metric = model.index_info.metric
    if model.preprocessor is None and model.extractor is None:
        return FeatureSpace(key, f"raw input rows ({workload.dim} dims)", workload.base, workload.queries, metric)
    parts = []
    if model.extractor is not None:
        parts.append(f"the bundle's extractor ({model.extractor.record.source}, {model.extractor.embedding_dim}-d embedding)")
    if model.preprocessor is not None:
        steps = ", ".join(f"{k}={v}" for k, v in model.preprocessor.config.to_dict().items())
        parts.append(f"its k-NN preprocessing ({steps})")
    base = _transform(model, workload.base)
    return FeatureSpace(key, f"{', then '.join(parts)} -> {base.shape[1]} dims", base, _transform(model, workload.queries), metric)


def check_bundle(path: Path, manifest: Manifest, workload: Workload, dataset_checksum: str) -> None:
    """Refuse a bundle that does not index this dataset's training rows (so its ids are our row numbers)."""
    n = workload.base.shape[0]
    if manifest.index.ntotal != n or int(np.prod(manifest.input_shape)) != workload.dim:
        raise BundleError(
            f"{path}: indexes {manifest.index.ntotal} inputs of {int(np.prod(manifest.input_shape))} features; "
            f"this dataset has {n} training rows of {workload.dim}"
        )
    if manifest.dataset is not None and manifest.dataset.checksum != dataset_checksum:
        raise BundleError(
            f"{path}: built from data with checksum {manifest.dataset.checksum[:12]}…, not this dataset's {dataset_checksum[:12]}…"
        )


def space_key(manifest: Manifest, taken: set[str]) -> str:
    """A unique key for a bundle's space: ``bundle:NAME`` (with a suffix if two bundles share a name)."""
    key, i = f"bundle:{manifest.name}", 2
    while key in taken:
        key, i = f"bundle:{manifest.name}#{i}", i + 1
    return key
