"""KNNModel: an index, its labels and its default query — the object served: rows prepared, searched, voted.

It is built by ``model_fit.fit_model`` and read and written by ``model_io`` (``KNNModel.fit``, ``.load``
and ``.save`` are those functions); the search kernel it uses is planned by ``kernels.choice``.
"""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass
from functools import cached_property
from typing import Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from knnserve.bundle import IndexRecord, Manifest
from knnserve.errors import InvalidInputError
from knnserve.features.extractor import Extractor
from knnserve.features.preprocess import Preprocessor
from knnserve.finite import check_magnitude
from knnserve.index import backend
from knnserve.kernels import KernelPlan, plan_kernel
from knnserve.kernels.choice import EXACT_INT8
from knnserve.kernels.dispatch import KernelDispatch
from knnserve.model_fit import fit_model
from knnserve.model_io import load_model, save_model
from knnserve.query import QueryBounds, resolve_query
from knnserve.vote import neighbor_labels, vote
from knnserve_client.wire.limits import DEFAULT_MAX_EF_SEARCH
from knnserve_client.wire.query import KnnQuery

# Distinct queries remembered by KNNModel.resolve before it starts over.
RESOLVED_CACHE_SIZE = 1024

INPUT_DTYPES = ("uint8", "float32")
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


class SearchOverlay(Protocol):
    """What searches a changing index (``knnserve.online.LiveModel``): FAISS's raw (distances, ids)."""

    def search(self, rows: np.ndarray, query: KnnQuery) -> tuple[np.ndarray, np.ndarray]:
        """The query's k nearest live rows of rows already in the index's space."""


# What a batched search gives: (distances, ids, features), features being the rows the linear head
# reads (the extractor's embeddings) when the model has an extractor, else None.
Searched = tuple[np.ndarray, np.ndarray, np.ndarray | None]


def true_distances(raw: np.ndarray, metric: str) -> np.ndarray:
    """Convert FAISS distances to the metric's own scale: the square root for METRIC_L2."""
    if metric == "l2":
        return np.sqrt(np.maximum(raw, 0.0, dtype=np.float32))
    return raw


class KNNModel:
    """A k-NN classifier over a FAISS index, with an optional linear head; numpy in, numpy out, no gRPC.

    Inputs are validated once, by :meth:`prepare`, into float32 rows (n, dim) of the raw input. The
    model's steps then run inside :meth:`search` (so inside the dynamic batch when served): the
    feature extractor, when the model has one (an ONNX network run by onnxruntime: raw images in,
    embeddings out), then the k-NN preprocessing (PCA, L2-normalisation) when it has one. The linear
    head reads the extractor's features (the raw rows without one) and applies its own preprocessing,
    so both heads take the same prepared rows.
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
        extractor: Extractor | None = None,
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
        self.extractor = extractor
        self._resolved: dict[tuple[KnnQuery, int, KnnQuery], KnnQuery] = {}
        # Set by knnserve.online.LiveModel when the model takes added and removed examples while served.
        self.overlay: SearchOverlay | None = None
        self.kernel = kernel
        # The kernels work on raw uint8 rows; an extractor's embeddings are float features.
        plan = plan_kernel(factory=index_info.factory, metric=index_info.metric, input_dtype=input_dtype,
                           preprocessed=preprocessor is not None or extractor is not None, dim=int(index.d),
                           policy=kernel)
        # Copies of a model share its index, so under the same policy they share its kernel too.
        self._dispatch = _dispatch if _dispatch is not None and _dispatch.policy == kernel else KernelDispatch(plan, index, kernel)

    # -- construction -------------------------------------------------------------------------

    # Building, loading and saving live in model_fit.py and model_io.py; these are those functions.
    fit = staticmethod(fit_model)
    load = staticmethod(load_model)
    save = save_model

    def with_defaults(self, defaults: KnnQuery) -> KNNModel:
        """A copy sharing the index, whose default query has the fields ``defaults`` sets changed."""
        return self._copy(defaults=defaults.or_defaults(self.defaults))

    def with_linear(self, linear: Any | None) -> KNNModel:
        """A copy sharing the index, carrying a fitted linear head (a LinearClassifier) or none."""
        if linear is not None and linear.n_features_in_ != self.feature_dim:
            raise InvalidInputError("linear", f"a head fitted on {self.feature_dim} features", linear.n_features_in_)
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
            "extractor": self.extractor,
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
    def feature_dim(self) -> int:
        """Number of features the linear head and the k-NN preprocessing read: the embedding size, else ``dim``."""
        return self.extractor.embedding_dim if self.extractor is not None else self.dim

    @property
    def heads(self) -> tuple[str, ...]:
        """Classification heads this model has: "knn", and "linear" when it carries one."""
        return ("knn", "linear") if self.linear is not None else ("knn",)

    def head_classes(self) -> tuple[tuple[str, int], ...]:
        """Per head, how many classes it knows (class indices 0 .. n-1): k-NN every class, including
        those added online; the linear head those it was trained on."""
        knn = ("knn", self.n_classes)
        if self.linear is None:
            return (knn,)
        return knn, ("linear", int(np.max(self.linear.classes_)) + 1)

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
    def is_hnsw(self) -> bool:
        """True when the index takes ef_search."""
        return backend.is_hnsw(self.index)

    def bounds(self, max_ef_search: int = DEFAULT_MAX_EF_SEARCH) -> QueryBounds:
        """What a query may ask of this model (k, nprobe, ef_search up to ``max_ef_search``, top_n)."""
        return QueryBounds.of(self.ntotal, self.nlist, self.is_hnsw, self.n_classes, max_ef_search)

    # -- inference ----------------------------------------------------------------------------

    def resolve(self, query: KnnQuery | None = None, *, max_ef_search: int = DEFAULT_MAX_EF_SEARCH) -> KnnQuery:
        """The query with this model's defaults filled in, checked against its index (ef_search capped)."""
        query = query or KnnQuery()
        key = (query, max_ef_search, self.defaults)
        resolved = self._resolved.get(key)
        if resolved is None:
            # Served requests repeat a handful of queries; remember them (bounded), errors are never stored.
            resolved = resolve_query(query, self.defaults, self.bounds(max_ef_search))
            if len(self._resolved) >= RESOLVED_CACHE_SIZE:
                self._resolved.clear()
            self._resolved[key] = resolved
        return resolved

    def prepare(self, x: np.ndarray, *, field: str = "x") -> np.ndarray:
        """Validate a batch (n, *input_shape) or (n, dim) and return it as float32 rows (n, dim).

        Errors name ``field`` and its parts (``x.shape``, ``x.dtype``); the service passes ``inputs``.
        """
        if not isinstance(x, np.ndarray):
            raise InvalidInputError(field, "a numpy array", type(x).__name__)
        if x.ndim < 1 or x.shape[0] < 1:
            raise InvalidInputError(f"{field}.shape", "at least one row", f"shape {x.shape}")
        expected = f"(n, {', '.join(map(str, self.input_shape))})"
        if len(self.input_shape) > 1:
            expected += f" or (n, {self.dim})"
        if self.extractor is not None and x.dtype not in (np.uint8, np.float32):
            # The extractor takes images: pixels as bytes, or float32 on the same scale.
            raise InvalidInputError(f"{field}.dtype", f"uint8 or float32 images of shape {expected} (the extractor's input)",
                                    str(x.dtype))
        if x.dtype.kind not in "uif":
            raise InvalidInputError(f"{field}.dtype", "uint8 or float32", str(x.dtype))
        if x.shape[1:] != self.input_shape and x.shape[1:] != (self.dim,):
            if self.extractor is not None:
                expected += f" (images for the extractor {self.extractor.record.source})"
            raise InvalidInputError(f"{field}.shape", expected, str(tuple(x.shape)))
        rows = np.ascontiguousarray(x.reshape(x.shape[0], self.dim), dtype=np.float32)
        if x.dtype != np.uint8:
            check_magnitude(rows, field)
        return rows

    def embed(self, prepared: np.ndarray) -> np.ndarray:
        """The features of prepared rows: the extractor's embeddings (n, embedding_dim), or the rows themselves."""
        if self.extractor is None:
            return prepared
        return self.extractor(prepared, self.input_shape)

    def vectors(self, prepared: np.ndarray) -> np.ndarray:
        """What the index compares: the features after the k-NN preprocessing (the space Search distances are in)."""
        features = self.embed(prepared)
        return features if self.preprocessor is None else self.preprocessor.transform(features)

    def search_features(self, prepared: np.ndarray, query: KnnQuery) -> Searched:
        """:meth:`search` that also returns the extractor's features (None without one) for the linear head."""
        assert query.k is not None, "resolve the query first (KNNModel.resolve)"
        features = self.embed(prepared)
        rows = features if self.preprocessor is None else self.preprocessor.transform(features)
        if self.overlay is not None:
            raw, ids = self.overlay.search(rows, query)
        else:
            raw, ids = self.search_index(rows, query)
        return true_distances(raw, self.index_info.metric), ids, (features if self.extractor is not None else None)

    def exact_kernel_search(self, rows: np.ndarray, query: KnnQuery) -> tuple[np.ndarray, np.ndarray] | None:
        """The exact-int8 kernel's raw (distances, ids) over the bundle's rows, or None where it does not apply."""
        assert query.k is not None, "resolve the query first (KNNModel.resolve)"
        if self._dispatch.plan.name != EXACT_INT8:
            return None
        return self._dispatch.search(rows, query.k, query.nprobe)

    def search_index(self, rows: np.ndarray, query: KnnQuery, *, exclude: backend.Exclusion | None = None,
                     kernels: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """FAISS's raw (distances, ids) for rows in the index's space: the planned kernel where it applies
        (``kernels``), else FAISS, skipping the ids of ``exclude``."""
        assert query.k is not None, "resolve the query first (KNNModel.resolve)"
        found = self._dispatch.search(rows, query.k, query.nprobe) if kernels and exclude is None else None
        if found is None:  # below the kernel's threshold, no kernel, or the index changed since it was planned
            found = backend.search(self.index, rows, query.k, nprobe=query.nprobe, ef_search=query.ef_search, exclude=exclude)
        return found

    def search_vectors(self, vectors: np.ndarray, query: KnnQuery) -> tuple[np.ndarray, np.ndarray]:
        """FAISS search of rows already in the index's space (:meth:`vectors`): (distances on the true scale, ids)."""
        assert query.k is not None, "resolve the query first (KNNModel.resolve)"
        if self.overlay is not None:
            raw, ids = self.overlay.search(vectors, query)
        else:
            raw, ids = backend.search(self.index, vectors, query.k, nprobe=query.nprobe, ef_search=query.ef_search)
        return true_distances(raw, self.index_info.metric), ids

    def search(self, prepared: np.ndarray, query: KnnQuery) -> tuple[np.ndarray, np.ndarray]:
        """The ``query.k`` nearest training vectors of prepared rows: (distances on the true scale, ids)."""
        distances, ids, _ = self.search_features(prepared, query)
        return distances, ids

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

    def predict_linear(self, prepared: np.ndarray, features: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The linear head on prepared rows: class indices (n,) and probabilities (n, C).

        ``features`` are the rows' features when a search already extracted them (:meth:`search_features`),
        so the extractor does not run twice. For an SVM head the probabilities are a softmax over its
        scores: they rank like the scores but are not calibrated.
        """
        if self.linear is None:
            raise InvalidInputError("heads", "knn only: this model has no linear head", "linear")
        if features is None:
            features = self.embed(prepared)
        probabilities = np.zeros((prepared.shape[0], self.n_classes), dtype=np.float32)
        probabilities[:, self.linear.classes_.astype(np.int64)] = self.linear.predict_proba(features)
        return probabilities.argmax(axis=1).astype(np.int64), probabilities


__all__ = ["Classification", "KNNModel", "Searched", "true_distances"]
