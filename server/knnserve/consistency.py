"""A loaded bundle's parts must agree: the manifest, the FAISS index, the preprocessing, the linear
head and the default query. Checksums prove a file is the one the manifest lists, not that what the
manifest says is true (an edited, re-checksummed manifest passes them), so this runs on every load.

With a feature extractor the chain is: input images -> extractor (its input must fit the images:
channels, height, width) -> an embedding of ``embedding_dim`` features -> k-NN preprocessing, whose
input is that embedding -> the index; the linear head reads the embedding too."""

from __future__ import annotations

import math
from typing import Any

from knnserve.errors import BundleError, InvalidInputError
from knnserve.features.extractor import ExtractorRecord, match_images
from knnserve.index import backend
from knnserve.query import QueryBounds, check_bounds
from knnserve_client.wire.limits import DEFAULT_MAX_EF_SEARCH
from knnserve_client.wire.query import KnnQuery


def _refuse(field: str, expected: str, got: object) -> BundleError:
    return BundleError(f"manifest {field}: expected {expected}, got {got}")


def check_defaults(defaults: KnnQuery, bounds: QueryBounds) -> None:
    """The default query must be one the index can run: k, nprobe, ef_search and top_n within bounds."""
    try:
        check_bounds(defaults, bounds)
    except InvalidInputError as exc:
        raise _refuse(f"knn.{exc.field}", exc.expected, exc.got) from None


def check_extractor(record: ExtractorRecord, input_shape: tuple[int, ...]) -> None:
    """The extractor must take the model's images (channels, height, width) and pass its own parity check."""
    try:
        match_images(record, input_shape, what="extractor.input_shape")
    except InvalidInputError as exc:
        raise _refuse("extractor.input_shape", exc.expected, exc.got) from None
    if record.embedding_dim < 1:
        raise _refuse("extractor.embedding_dim", "an integer >= 1", record.embedding_dim)
    if not record.scale > 0:
        raise _refuse("extractor.scale", "a number > 0", record.scale)
    if record.parity is not None and not record.parity.passed:
        raise _refuse("extractor.parity.passed", "true (the ONNX graph matched torch when it was exported)", False)


def check_bundle_parts(model: Any) -> None:
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
    feature_field = "input_shape"
    if model.extractor is not None:
        check_extractor(model.extractor.record, tuple(model.input_shape))
        dim, feature_field = model.extractor.embedding_dim, "extractor.embedding_dim"
    if model.preprocessor is not None:
        if model.preprocessor.input_dim != dim:
            raise _refuse(feature_field, f"{model.preprocessor.input_dim} features (what the preprocessing takes)",
                          dim if model.extractor is not None else model.input_shape)
        if model.preprocessor.output_dim != index.d:
            raise _refuse("preprocessing.output_dim", f"{index.d} (the index dimension)", model.preprocessor.output_dim)
    elif dim != index.d:
        raise _refuse(feature_field, f"{'' if model.extractor is not None else 'a shape of '}{index.d} features (the index dimension)",
                      dim if model.extractor is not None else list(model.input_shape))
    if model.linear is not None:
        if model.linear.n_features_in_ != dim:
            raise _refuse("linear", f"a head over {dim} {'embedding' if model.extractor is not None else 'input'} features",
                          f"{model.linear.n_features_in_}")
        classes = [int(c) for c in model.linear.classes_]
        if any(not 0 <= c < model.n_classes for c in classes):
            raise _refuse("linear classes", f"class indices below {model.n_classes}", classes)
    check_defaults(model.defaults, model.bounds(DEFAULT_MAX_EF_SEARCH))


__all__ = ["check_defaults", "check_extractor", "check_bundle_parts"]
