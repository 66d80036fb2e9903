"""Building a KNNModel from training rows: validate, extract, fit the preprocessing, build the index, record it.

``KNNModel.fit`` is this function; it lives apart from the served model because it changes for other
reasons (training options, index specs) than searching does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from knnserve.bundle import IndexRecord
from knnserve.errors import InvalidInputError
from knnserve.features.extractor import Extractor
from knnserve.features.preprocess import PreprocessConfig, fit_preprocessor
from knnserve.finite import check_magnitude
from knnserve.index import backend, build_index, resolve_spec
from knnserve.query import BASE_DEFAULTS
from knnserve_client.wire.query import KnnQuery

if TYPE_CHECKING:
    from knnserve.model import KNNModel


def fit_model(
    x: np.ndarray,
    y: np.ndarray,
    *,
    class_names: tuple[str, ...] | None = None,
    index: str = "flat",
    metric: str = "l2",
    storage: str = "auto",
    preprocess: PreprocessConfig | None = None,
    defaults: KnnQuery | None = None,
    progress: bool = False,
    extractor: Extractor | None = None,
    features: np.ndarray | None = None,
) -> KNNModel:
    """Index training images ``x`` (N, *shape) with integer labels ``y`` in [0, C).

    ``x`` keeps its dtype on the way in: uint8 pixels under L2 are stored as raw bytes (exact).
    With an ``extractor``, the index holds its embeddings of ``x`` instead (``features``: those
    embeddings when the caller already has them, else they are computed here), and every query
    goes through it. ``preprocess`` (e.g. PCA and L2-normalisation) is fitted on what is indexed
    and applied to every query.
    ``defaults`` is the model's default query; unset fields get k=5, uniform, nearest and the
    index's own search effort (nprobe = min(16, nlist), efSearch 64).
    """
    from knnserve.model import KNNModel

    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim < 2 or x.shape[0] < 1:
        raise InvalidInputError("x", "a non-empty batch (N, ...) of vectors or images", f"shape {x.shape}")
    if y.shape != (x.shape[0],) or y.dtype.kind not in "iu":
        raise InvalidInputError("y", f"{x.shape[0]} integer labels", f"shape {y.shape} dtype {y.dtype}")
    if y.min() < 0:
        raise InvalidInputError("y", "class indices >= 0", int(y.min()))
    n_classes = int(y.max()) + 1 if class_names is None else len(class_names)
    if y.max() >= n_classes:
        raise InvalidInputError("y", f"class indices below {n_classes} (len(class_names))", int(y.max()))
    names = tuple(class_names) if class_names is not None else tuple(str(c) for c in range(n_classes))
    input_dtype = "uint8" if x.dtype == np.uint8 else "float32"
    flat = x.reshape(x.shape[0], -1)
    if input_dtype == "float32":
        flat = np.ascontiguousarray(flat, dtype=np.float32)
        check_magnitude(flat, "x")
    if extractor is not None:
        if features is None:
            features = extractor(np.ascontiguousarray(flat, dtype=np.float32), tuple(x.shape[1:]))
        if features.shape != (x.shape[0], extractor.embedding_dim):
            raise InvalidInputError("features", f"shape ({x.shape[0]}, {extractor.embedding_dim})", features.shape)
        flat = np.ascontiguousarray(features, dtype=np.float32)
        check_magnitude(flat, "features")
    elif features is not None:
        raise InvalidInputError("features", "None without an extractor", "an array")
    preprocessor = None
    if preprocess is not None:
        preprocessor = fit_preprocessor(flat, preprocess)
        flat = preprocessor.transform(flat)
    spec = resolve_spec(index, n=flat.shape[0], d=flat.shape[1], metric=metric, dtype=flat.dtype, storage=storage)
    built, report = build_index(flat, spec, progress=progress)
    info = IndexRecord(
        spec=spec.requested,
        factory=spec.factory,
        metric=spec.metric,  # type: ignore[arg-type]
        storage=spec.storage,
        kind=spec.kind,
        build_params=spec.build_params,
        dim=int(built.d),
        ntotal=int(built.ntotal),
        train_seconds=report.train_seconds,
        add_seconds=report.add_seconds,
        serialized_bytes=backend.serialized_size(built),
    )
    index_defaults = KnnQuery(nprobe=spec.default_nprobe, ef_search=spec.default_ef_search)
    stored = (defaults or KnnQuery()).or_defaults(index_defaults).or_defaults(BASE_DEFAULTS)
    return KNNModel(
        index=built,
        labels=y,
        class_names=names,
        input_shape=x.shape[1:],
        input_dtype=input_dtype,
        index_info=info,
        defaults=stored,
        preprocessor=preprocessor,
        extractor=extractor,
    )



__all__ = ["fit_model"]
