"""KNNModel: an index, its labels and its default query — the object trained, saved, loaded and served."""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from knnserve.bundle import DatasetInfo, IndexRecord, Manifest, load_bundle, save_bundle
from knnserve.errors import BundleError, InvalidInputError
from knnserve.features.preprocess import PreprocessConfig, Preprocessor, fit_preprocessor
from knnserve.index import backend, build_index, resolve_spec
from knnserve.kernels import KernelPlan, plan_kernel
from knnserve.kernels.dispatch import KernelDispatch
from knnserve.query import BASE_DEFAULTS, QueryBounds, resolve_query
from knnserve.vote import neighbor_labels, vote
from knnserve_client.wire.query import KnnQuery

INPUT_DTYPES = ("uint8", "float32")
KNN_PREPROCESS_ARRAYS = "knn_preprocess"
LINEAR_ARRAYS = "linear"
PREDICT_CHUNK_ROWS = 4096


@dataclass(frozen=True)
class Classification:
    """k-NN results for a batch: predictions, probabilities and the neighbors behind them.

    ``distances`` are on the metric's true scale (Euclidean for l2, not FAISS's squared value);
    ``ids`` index the training vectors, -1 where fewer than k neighbors were found.
    """

    predictions: np.ndarray
    probabilities: np.ndarray
    distances: np.ndarray
    ids: np.ndarray
    neighbor_labels: np.ndarray


def true_distances(raw: np.ndarray, metric: str) -> np.ndarray:
    """Convert FAISS distances to the metric's own scale: the square root for METRIC_L2."""
    if metric == "l2":
        return np.sqrt(np.maximum(raw, 0.0, dtype=np.float32))
    return raw


class KNNModel:
    """A k-NN classifier over a FAISS index, with an optional linear head; numpy in, numpy out, no gRPC.

    Inputs are validated once, by :meth:`prepare`, into float32 rows (n, dim) of the raw input; the
    k-NN preprocessing (PCA, L2-normalisation), when the model has one, is applied inside
    :meth:`search`, and the linear head applies its own, so both heads take the same prepared rows.
    A query (:class:`KnnQuery`) is resolved against the model once, by :meth:`resolve`; the
    methods that take a query expect a resolved one.

    ``kernel`` is ``auto`` (search large enough batches with the planned kernel where it is exact,
    see ``knnserve.kernels``) or ``faiss`` (FAISS always); :attr:`kernel_plan` says which.
    """

    def __init__(
        self,
        *,
        index: backend.Index,
        labels: np.ndarray,
        class_names: tuple[str, ...],
        input_shape: tuple[int, ...],
        input_dtype: str,
        index_info: IndexRecord,
        defaults: KnnQuery,
        manifest: Manifest | None = None,
        preprocessor: Preprocessor | None = None,
        linear: Any | None = None,
        kernel: str = "auto",
        _dispatch: KernelDispatch | None = None,
    ) -> None:
        if input_dtype not in INPUT_DTYPES:
            raise InvalidInputError("input_dtype", f"one of {', '.join(INPUT_DTYPES)}", input_dtype)
        self.index = index
        self.labels = np.ascontiguousarray(labels, dtype=np.int64)
        self.class_names = tuple(class_names)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.input_dtype = np.dtype(input_dtype)
        self.index_info = index_info
        self.defaults = defaults
        self.manifest = manifest
        self.preprocessor = preprocessor
        self.linear = linear  # a fitted knnserve.linear.LinearClassifier, or None
        self.kernel = kernel
        plan = plan_kernel(factory=index_info.factory, metric=index_info.metric, input_dtype=input_dtype,
                           preprocessed=preprocessor is not None, dim=int(index.d), policy=kernel)
        # Copies of a model share its index, so under the same policy they share its kernel too.
        self._dispatch = _dispatch if _dispatch is not None and _dispatch.policy == kernel else KernelDispatch(plan, index, kernel)

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
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
    ) -> KNNModel:
        """Index training images ``x`` (N, *shape) with integer labels ``y`` in [0, C).

        ``x`` keeps its dtype on the way in: uint8 pixels under L2 are stored as raw bytes (exact).
        ``preprocess`` (e.g. PCA and L2-normalisation) is fitted on ``x`` and applied to every query.
        ``defaults`` is the model's default query; unset fields get k=5, uniform, nearest and the
        index's own search effort (nprobe = min(16, nlist), efSearch 64).
        """
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
            if not np.isfinite(flat).all():
                raise InvalidInputError("x", "finite values", "NaN or infinity")
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
        return cls(
            index=built,
            labels=y,
            class_names=names,
            input_shape=x.shape[1:],
            input_dtype=input_dtype,
            index_info=info,
            defaults=stored,
            preprocessor=preprocessor,
        )

    @classmethod
    def load(cls, path: str | Path) -> KNNModel:
        """Load and verify a bundle folder."""
        bundle = load_bundle(path)
        manifest = bundle.manifest
        preprocessor = linear = None
        try:
            if manifest.preprocessing:
                preprocessor = Preprocessor.from_arrays(bundle.arrays.get(KNN_PREPROCESS_ARRAYS, {}), manifest.preprocessing)
            if manifest.linear is not None:
                from knnserve.linear import LinearClassifier

                linear = LinearClassifier.from_arrays(bundle.arrays.get(LINEAR_ARRAYS, {}), manifest.linear)
        except (KeyError, ValueError) as exc:
            raise BundleError(f"{path}: preprocessing or linear head arrays do not match the manifest ({exc})") from exc
        return cls(
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
        )

    def save(
        self,
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
        if self.preprocessor is not None:
            arrays[KNN_PREPROCESS_ARRAYS] = self.preprocessor.to_arrays()
        if self.linear is not None:
            arrays[LINEAR_ARRAYS] = self.linear.to_arrays()
        manifest = Manifest(
            name=name,
            dataset=dataset,
            input_shape=self.input_shape,
            input_dtype=str(self.input_dtype),  # type: ignore[arg-type]
            class_names=self.class_names,
            index=self.index_info,
            knn=self.defaults,
            preprocessing=self.preprocessor.metadata() if self.preprocessor is not None else {},
            heads=self.heads,
            linear=self.linear.metadata() if self.linear is not None else None,
            metrics=metrics or {},
            extra=extra or {},
        )
        self.manifest = save_bundle(path, manifest, self.index, self.labels, arrays=arrays, overwrite=overwrite)
        return self.manifest

    def with_defaults(self, defaults: KnnQuery) -> KNNModel:
        """A copy sharing the index, whose default query has the fields ``defaults`` sets changed."""
        return self._copy(defaults=defaults.or_defaults(self.defaults))

    def with_linear(self, linear: Any | None) -> KNNModel:
        """A copy sharing the index, carrying a fitted linear head (a LinearClassifier) or none."""
        if linear is not None and linear.n_features_in_ != self.dim:
            raise InvalidInputError("linear", f"a head fitted on {self.dim} input features", linear.n_features_in_)
        return self._copy(linear=linear)

    def with_kernel(self, kernel: str) -> KNNModel:
        """A copy sharing the index whose searches use ``kernel`` (``auto`` or ``faiss``)."""
        return self._copy(kernel=kernel)

    def warm_kernel(self) -> None:
        """Build the planned kernel now rather than on the first batch that uses it."""
        self._dispatch.warm()

    def _copy(self, **changes: Any) -> KNNModel:
        fields = {
            "index": self.index,
            "labels": self.labels,
            "class_names": self.class_names,
            "input_shape": self.input_shape,
            "input_dtype": str(self.input_dtype),
            "index_info": self.index_info,
            "defaults": self.defaults,
            "manifest": self.manifest,
            "preprocessor": self.preprocessor,
            "linear": self.linear,
            "kernel": self.kernel,
            "_dispatch": self._dispatch,
        }
        return KNNModel(**{**fields, **changes})

    # -- facts --------------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        """Number of features one flattened input row has."""
        return math.prod(self.input_shape)

    @property
    def heads(self) -> tuple[str, ...]:
        """Classification heads this model has: "knn", and "linear" when it carries one."""
        return ("knn", "linear") if self.linear is not None else ("knn",)

    @property
    def ntotal(self) -> int:
        """Number of indexed training vectors."""
        return int(self.index.ntotal)

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    @cached_property
    def nlist(self) -> int | None:
        """Inverted lists of an IVF index, None for others."""
        return backend.nlist(self.index)

    @property
    def kernel_plan(self) -> KernelPlan:
        """The search kernel this model uses for large batches, or FAISS and why (``knnserve.kernels``)."""
        return self._dispatch.plan

    @cached_property
    def bounds(self) -> QueryBounds:
        """What a query may ask of this model (k, nprobe, the knobs its index has, top_n)."""
        return QueryBounds(self.ntotal, self.nlist, backend.is_hnsw(self.index), self.n_classes)

    # -- inference ----------------------------------------------------------------------------

    def resolve(self, query: KnnQuery | None = None) -> KnnQuery:
        """The query with this model's defaults filled in, checked against its index."""
        return resolve_query(query or KnnQuery(), self.defaults, self.bounds)

    def prepare(self, x: np.ndarray, *, field: str = "x") -> np.ndarray:
        """Validate a batch (n, *input_shape) or (n, dim) and return it as float32 rows (n, dim).

        Errors name ``field`` and its parts (``x.shape``, ``x.dtype``); the service passes ``inputs``.
        """
        if not isinstance(x, np.ndarray):
            raise InvalidInputError(field, "a numpy array", type(x).__name__)
        if x.ndim < 1 or x.shape[0] < 1:
            raise InvalidInputError(f"{field}.shape", "at least one row", f"shape {x.shape}")
        if x.dtype.kind not in "uif":
            raise InvalidInputError(f"{field}.dtype", "uint8 or float32", str(x.dtype))
        if x.shape[1:] != self.input_shape and x.shape[1:] != (self.dim,):
            expected = f"(n, {', '.join(map(str, self.input_shape))})"
            if len(self.input_shape) > 1:
                expected += f" or (n, {self.dim})"
            raise InvalidInputError(f"{field}.shape", expected, str(tuple(x.shape)))
        rows = np.ascontiguousarray(x.reshape(x.shape[0], self.dim), dtype=np.float32)
        if x.dtype.kind == "f" and not np.isfinite(rows).all():
            raise InvalidInputError(field, "finite values", "NaN or infinity")
        return rows

    def search(self, prepared: np.ndarray, query: KnnQuery) -> tuple[np.ndarray, np.ndarray]:
        """The ``query.k`` nearest training vectors of prepared rows: (distances on the true scale, ids)."""
        assert query.k is not None, "resolve the query first (KNNModel.resolve)"
        rows = prepared if self.preprocessor is None else self.preprocessor.transform(prepared)
        found = self._dispatch.search(rows, query.k, query.nprobe)
        if found is None:
            found = backend.search(self.index, rows, query.k, nprobe=query.nprobe, ef_search=query.ef_search)
        raw, ids = found
        return true_distances(raw, self.index_info.metric), ids

    def vote(self, distances: np.ndarray, ids: np.ndarray, query: KnnQuery) -> Classification:
        """Vote over (the first ``query.k`` columns of) already-found neighbors."""
        assert query.k is not None and query.weights is not None and query.tie_break is not None, "resolve the query first"
        distances, ids = distances[:, : query.k], ids[:, : query.k]
        labels = neighbor_labels(self.labels, ids)
        result = vote(labels, distances, self.n_classes, weights=query.weights, tie_break=query.tie_break)
        return Classification(result.predictions, result.probabilities, distances, ids, labels)

    def classify(self, x: np.ndarray, query: KnnQuery | None = None, *, progress: bool = False) -> Classification:
        """Classify a batch of inputs by k-NN voting; large batches are searched in chunks."""
        return self.classify_prepared(self.prepare(x), self.resolve(query), progress=progress)

    def classify_prepared(self, rows: np.ndarray, query: KnnQuery, *, progress: bool = False) -> Classification:
        """:meth:`classify` for rows returned by :meth:`prepare` and a query returned by :meth:`resolve`."""
        parts: list[Classification] = []
        with tqdm(total=rows.shape[0], desc="classify", unit="row", disable=not progress, leave=False) as bar:
            for start in range(0, rows.shape[0], PREDICT_CHUNK_ROWS):
                distances, ids = self.search(rows[start : start + PREDICT_CHUNK_ROWS], query)
                parts.append(self.vote(distances, ids, query))
                bar.update(ids.shape[0])
        if len(parts) == 1:
            return parts[0]
        return Classification(*(np.concatenate(column) for column in zip(*(astuple(p) for p in parts))))

    def predict_linear(self, prepared: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The linear head on prepared rows: class indices (n,) and probabilities (n, C).

        For an SVM head the probabilities are a softmax over its scores: they rank like the scores
        but are not calibrated.
        """
        if self.linear is None:
            raise InvalidInputError("heads", "knn only: this model has no linear head", "linear")
        probabilities = np.zeros((prepared.shape[0], self.n_classes), dtype=np.float32)
        probabilities[:, self.linear.classes_.astype(np.int64)] = self.linear.predict_proba(prepared)
        return probabilities.argmax(axis=1).astype(np.int64), probabilities


__all__ = ["Classification", "KNNModel", "true_distances"]
