"""``--server`` mode: the same runs through the gRPC client against a running server, for over-the-wire figures."""

from __future__ import annotations

from typing import Any

import numpy as np

from knnserve.errors import InvalidInputError, KnnServeError
from knnserve.evaluate.config import EvaluateConfig
from knnserve.evaluate.measure import measure_search
from knnserve.evaluate.metrics import exact_distances
from knnserve.evaluate.runs import RunOutput, params_label
from knnserve.evaluate.space import FeatureSpace
from knnserve.evaluate.workload import Workload

# A served model trained on other data would return labels that disagree with ours for its ids.
MAX_LABEL_MISMATCH = 0.01
# Served distances (even PQ's approximate ones) stay within a few percent of the exact distances in
# the right space; a model that preprocesses its inputs (e.g. L2-normalises) is far off on raw rows.
MAX_DISTANCE_MISMATCH = 0.25
CHECK_ROWS = 64


def server_settings(kind: str, nlist: int | None, defaults: dict[str, int | None], config: EvaluateConfig) -> list[dict[str, int]]:
    """Search settings for the served index: the sweep of its kind (capped at nlist), else the model's defaults."""
    sweep = config.sweep_for(kind) if kind in ("ivf", "hnsw") else None
    if sweep is None:
        return [{key: value for key, value in defaults.items() if value is not None}]
    values = [v for v in sweep.values if nlist is None or v <= nlist] if kind == "ivf" else list(sweep.values)
    return [{sweep.parameter: v} for v in values]


def _check_model(info: Any, workload: Workload, space: FeatureSpace) -> None:
    if info.dim != workload.dim or info.index.ntotal != workload.base.shape[0]:
        raise InvalidInputError(
            "model",
            f"a model indexing this dataset's {workload.base.shape[0]} training rows of dimension {workload.dim}",
            f"{info.name}: {info.index.ntotal} vectors of dimension {info.dim}",
        )
    if info.index.dim != space.dim:
        raise InvalidInputError(
            "model",
            f"an index over {space.description} to compare with; {info.name} searches {info.index.dim}-dimensional "
            "features (it preprocesses its inputs): pass --bundle with the bundle it serves",
            f"{info.index.dim} dims",
        )
    if info.index.metric != space.metric:
        raise InvalidInputError("metric", f"{info.index.metric} (the served model's metric)", space.metric)


def _check_space(distances: np.ndarray, ids: np.ndarray, space: FeatureSpace, model: str) -> None:
    """Refuse a served model whose distances do not match exact distances in ``space`` for the same ids."""
    exact = exact_distances(space.base, space.queries[: ids.shape[0]], ids, space.metric)
    valid = (ids >= 0) & (exact > 0)
    if not valid.any():
        return
    mismatch = float(np.median(np.abs(distances[valid] - exact[valid]) / exact[valid]))
    if mismatch > MAX_DISTANCE_MISMATCH:
        raise KnnServeError(
            f"served model {model!r}: its distances differ from exact distances over {space.description} by "
            f"{mismatch:.0%} (median); it searches another feature space (preprocessing). Pass --bundle with the "
            "bundle it serves, so the ground truth is computed in its space"
        )


def _check_labels(ids: np.ndarray, labels: np.ndarray, workload: Workload, model: str) -> None:
    valid = ids >= 0
    mismatch = float(np.mean(labels[valid] != workload.base_labels[ids[valid]])) if valid.any() else 0.0
    if mismatch > MAX_LABEL_MISMATCH:
        raise KnnServeError(
            f"served model {model!r}: {mismatch:.1%} of its neighbours' labels differ from this dataset's training "
            "labels; it was not trained on this dataset's training split in this order"
        )


def evaluate_server(workload: Workload, config: EvaluateConfig, space: FeatureSpace) -> list[RunOutput]:
    """Search the served model (``config.model`` at ``config.server``) at each setting, through ``knnserve_client``.

    ``space`` is what the served index searches (raw rows, or a ``--bundle``'s preprocessed features):
    its size, metric, the labels and the distances the server returns are checked against it first.
    Queries travel in their own dtype (uint8 pixels stay bytes). Batch mode sends all queries in
    one client call (the client splits them under the server's limits); single mode one row a call.
    """
    from knnserve_client import KnnServeClientError

    try:
        return _evaluate_server(workload, config, space)
    except KnnServeClientError as exc:  # the CLI reports knnserve errors as one line, not a traceback
        raise KnnServeError(f"--server {config.server}, model {config.model!r}: {exc}") from exc


def _evaluate_server(workload: Workload, config: EvaluateConfig, space: FeatureSpace) -> list[RunOutput]:
    from knnserve_client import Client

    assert config.server is not None and config.model is not None
    runs: list[RunOutput] = []
    with Client(config.server, timeout=config.server_timeout, tls=config.server_tls, token=config.server_token) as client:
        info = client.model(config.model)
        _check_model(info, workload, space)
        first = client.search(config.model, workload.queries[:CHECK_ROWS], version=info.version, k=config.search_k)
        _check_labels(first.ids, first.labels, workload, config.model)
        _check_space(first.distances, first.ids, space, config.model)
        defaults = {"nprobe": info.defaults.nprobe, "ef_search": info.defaults.ef_search}
        facts = {"spec": info.index.spec, "factory": info.index.factory, "storage": "as served", "kind": info.index.kind,
                 "metric": info.index.metric, "model": info.name, "version": info.version}
        if info.index.nlist is not None:
            facts["nlist"] = info.index.nlist

        def search(rows: np.ndarray, params: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
            result = client.search(config.model, rows, version=info.version, k=config.search_k, **params)
            return result.distances, result.ids

        for params in server_settings(info.index.kind, info.index.nlist, defaults, config):
            label = f"{info.index.factory} {params_label(params)} (gRPC {info.name} v{info.version})".replace("  ", " ")
            measured = measure_search(
                lambda rows, p=params: search(rows, p),
                workload.queries,
                modes=config.timed_modes,
                single_rows=workload.single_rows(config.exact_single_queries if info.index.kind == "flat" else config.single_queries),
                repeats=config.repeats,
                max_seconds=config.max_run_seconds,
                progress=config.progress,
                desc=label,
            )
            runs.append(RunOutput(
                label=label,
                system="knnserve",
                transport="grpc",
                index=dict(facts),
                params=params,
                exact=info.index.kind == "flat",
                ids=measured.ids,
                distances=measured.distances,
                batch=measured.batch,
                single=measured.single,
                notes=(f"Search RPC to {config.server} through knnserve_client; {workload.queries.dtype} rows on the wire",),
                space=space.key,
            ))
    return runs
