"""A loaded bundle's parts must agree: the manifest, the FAISS index, the preprocessing, the linear
head and the default query. Checksums prove a file is the one the manifest lists, not that what the
manifest says is true (an edited, re-checksummed manifest passes them), so this runs on every load."""

from __future__ import annotations

import math
from typing import Any

from knnserve.errors import BundleError
from knnserve.index import backend
from knnserve.query import QueryBounds
from knnserve_client.wire.limits import DEFAULT_MAX_EF_SEARCH
from knnserve_client.wire.query import KnnQuery


def _refuse(field: str, expected: str, got: object) -> BundleError:
    return BundleError(f"manifest {field}: expected {expected}, got {got}")


def check_defaults(defaults: KnnQuery, bounds: QueryBounds) -> None:
    """The default query must be one the index can run: k, nprobe, ef_search and top_n within bounds."""
    if defaults.k is not None and defaults.k > bounds.ntotal:
        raise _refuse("knn.k", f"at most ntotal={bounds.ntotal}", defaults.k)
    if defaults.nprobe is not None:
        if bounds.nlist is None:
            raise _refuse("knn.nprobe", "unset (the index has no inverted lists)", defaults.nprobe)
        if defaults.nprobe > bounds.nlist:
            raise _refuse("knn.nprobe", f"at most nlist={bounds.nlist}", defaults.nprobe)
    if defaults.ef_search is not None:
        if bounds.max_ef_search is None:
            raise _refuse("knn.ef_search", "unset (the index is not HNSW)", defaults.ef_search)
        if defaults.ef_search > bounds.max_ef_search:
            raise _refuse("knn.ef_search", f"at most {bounds.max_ef_search}", defaults.ef_search)
    if defaults.top_n is not None and defaults.top_n > bounds.n_classes:
        raise _refuse("knn.top_n", f"at most the {bounds.n_classes} classes", defaults.top_n)


def check_model(model: Any) -> None:
    """Raise BundleError naming the first manifest field that disagrees with the loaded parts of ``model``.

    ``model`` is a ``KNNModel`` (typed loosely: model.py calls this while loading).
    """
    info = model.index_info
    index = model.index
    metric = backend.metric_name(index)
    if info.metric != metric:
        raise _refuse("index.metric", f"{metric} (the metric the FAISS index searches with)", info.metric)
    if info.dim != index.d or info.ntotal != index.ntotal:
        raise _refuse("index.dim/ntotal", f"{index.d}/{index.ntotal} (the FAISS index)", f"{info.dim}/{info.ntotal}")
    dim = math.prod(model.input_shape)
    if model.preprocessor is not None:
        if model.preprocessor.input_dim != dim:
            raise _refuse("input_shape", f"{model.preprocessor.input_shape} (what the preprocessing takes)", model.input_shape)
        if model.preprocessor.output_dim != index.d:
            raise _refuse("preprocessing.output_dim", f"{index.d} (the index dimension)", model.preprocessor.output_dim)
    elif dim != index.d:
        raise _refuse("input_shape", f"a shape of {index.d} features (the index dimension)", list(model.input_shape))
    if model.linear is not None:
        if model.linear.n_features_in_ != dim:
            raise _refuse("linear", f"a head over {dim} input features", f"{model.linear.n_features_in_}")
        classes = [int(c) for c in model.linear.classes_]
        if any(not 0 <= c < model.n_classes for c in classes):
            raise _refuse("linear classes", f"class indices below {model.n_classes}", classes)
    check_defaults(model.defaults, model.bounds(DEFAULT_MAX_EF_SEARCH))


__all__ = ["check_defaults", "check_model"]
