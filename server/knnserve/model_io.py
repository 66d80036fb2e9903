"""A KNNModel to and from its bundle folder: the parts read and checked against each other, or written atomically.

``KNNModel.load`` and ``KNNModel.save`` are these functions; the bundle format itself (manifest,
checksums, atomic folder) is ``bundle.py``'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from knnserve.bundle import DatasetInfo, Manifest, load_bundle, save_bundle
from knnserve.consistency import check_bundle_parts
from knnserve.errors import BundleError
from knnserve.features.extractor import Extractor
from knnserve.features.preprocess import Preprocessor

if TYPE_CHECKING:
    from knnserve.model import KNNModel

KNN_PREPROCESS_ARRAYS = "knn_preprocess"
LINEAR_ARRAYS = "linear"


def load_model(path: str | Path, *, mmap: bool = False, extractor_threads: int | None = None,
               kernel: str = "auto") -> KNNModel:
    """Load and verify a bundle folder.

    ``mmap``: map its index file read-only, so processes serving it share one copy;
    ``extractor_threads``: onnxruntime's threads for a ConvNet extractor (None: one per core);
    ``kernel``: the search-kernel policy, ``auto`` or ``faiss`` (see the class).
    """
    from knnserve.model import KNNModel

    bundle = load_bundle(path, mmap=mmap)
    manifest = bundle.manifest
    preprocessor = linear = extractor = None
    try:
        if manifest.extractor is not None:
            extractor = Extractor(bundle.blobs[manifest.extractor.file], manifest.extractor, threads=extractor_threads)
        if manifest.preprocessing:
            preprocessor = Preprocessor.from_arrays(bundle.arrays.get(KNN_PREPROCESS_ARRAYS, {}), manifest.preprocessing)
        if manifest.linear is not None:
            from knnserve.linear import LinearClassifier

            linear = LinearClassifier.from_arrays(bundle.arrays.get(LINEAR_ARRAYS, {}), manifest.linear)
    except BundleError as exc:
        raise BundleError(f"{path}: {exc}") from None
    except (KeyError, ValueError) as exc:
        raise BundleError(f"{path}: preprocessing or linear head arrays do not match the manifest ({exc})") from exc
    model = KNNModel(
        index=bundle.index,
        labels=bundle.labels,
        class_names=manifest.class_names,
        input_shape=manifest.input_shape,
        input_dtype=manifest.input_dtype,
        index_info=manifest.index,
        defaults=manifest.knn,
        manifest=manifest,
        preprocessor=preprocessor,
        linear=linear,
        extractor=extractor,
        kernel=kernel,
    )
    try:
        check_bundle_parts(model)
    except BundleError as exc:
        raise BundleError(f"{path}: {exc}") from None
    return model


def save_model(
    model: KNNModel,
    path: str | Path,
    *,
    name: str,
    dataset: DatasetInfo | None = None,
    metrics: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Manifest:
    """Write the model as a bundle folder (atomically) and return its manifest."""
    arrays: dict[str, dict[str, np.ndarray]] = {}
    blobs: dict[str, bytes] = {}
    if model.extractor is not None:
        blobs[model.extractor.record.file] = model.extractor.onnx
    if model.preprocessor is not None:
        arrays[KNN_PREPROCESS_ARRAYS] = model.preprocessor.to_arrays()
    if model.linear is not None:
        arrays[LINEAR_ARRAYS] = model.linear.to_arrays()
    manifest = Manifest(
        name=name,
        dataset=dataset,
        input_shape=model.input_shape,
        input_dtype=str(model.input_dtype),  # type: ignore[arg-type]
        class_names=model.class_names,
        index=model.index_info,
        knn=model.defaults,
        preprocessing=model.preprocessor.metadata() if model.preprocessor is not None else {},
        heads=model.heads,
        linear=model.linear.metadata() if model.linear is not None else None,
        extractor=model.extractor.record if model.extractor is not None else None,
        metrics=metrics or {},
        extra=extra or {},
    )
    model.manifest = save_bundle(path, manifest, model.index, model.labels, arrays=arrays, blobs=blobs, overwrite=overwrite)
    return model.manifest



__all__ = ["KNN_PREPROCESS_ARRAYS", "LINEAR_ARRAYS", "load_model", "save_model"]
