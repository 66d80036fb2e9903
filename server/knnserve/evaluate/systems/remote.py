"""``--server`` mode: a served model searched through the gRPC client, for over-the-wire figures."""

from __future__ import annotations

from typing import Any

import numpy as np

from knnserve.errors import InvalidInputError, KnnServeError
from knnserve.evaluate.config import EvaluateConfig
from knnserve.evaluate.metrics import exact_distances
from knnserve.evaluate.space import FeatureSpace
from knnserve.evaluate.systems.base import Answer, Description, Modes, Setting, is_exact
from knnserve.evaluate.systems.inprocess import sweep_queries
from knnserve.evaluate.workload import Workload
from knnserve_client.wire.model_info import ModelInfo
from knnserve_client.wire.query import KnnQuery

# A served model trained on other data would return labels that disagree with ours for its ids.
MAX_LABEL_MISMATCH = 0.01
# Served distances (even PQ's approximate ones) stay within a few percent of the exact distances in
# the right space; a model that preprocesses its inputs (e.g. L2-normalises) is far off on raw rows.
MAX_DISTANCE_MISMATCH = 0.25
CHECK_ROWS = 64


def check_served_model(info: ModelInfo, workload: Workload, space: FeatureSpace) -> None:
    """Refuse a served model that does not index this dataset's training rows in ``space``."""
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


def check_space(distances: np.ndarray, ids: np.ndarray, space: FeatureSpace, model: str) -> None:
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


def check_labels(ids: np.ndarray, labels: np.ndarray, workload: Workload, model: str) -> None:
    """Refuse a served model whose neighbors' labels are not this dataset's training labels."""
    valid = ids >= 0
    mismatch = float(np.mean(labels[valid] != workload.base_labels[ids[valid]])) if valid.any() else 0.0
    if mismatch > MAX_LABEL_MISMATCH:
        raise KnnServeError(
            f"served model {model!r}: {mismatch:.1%} of its neighbors' labels differ from this dataset's training "
            "labels; it was not trained on this dataset's training split in this order"
        )


class RemoteServer:
    """The served model ``config.model`` at ``config.server``, searched with ``Client.search``.

    ``space`` is what the served index searches (raw rows, or a ``--bundle``'s preprocessed
    features): its size, metric, the labels and the distances the server returns are checked
    against it when the system opens. Queries travel in their own dtype (uint8 pixels stay bytes);
    batch mode sends all queries in one client call (the client splits them under the server's
    limits), single mode one row a call.
    """

    modes = Modes()

    def __init__(self, workload: Workload, config: EvaluateConfig, space: FeatureSpace) -> None:
        if config.server is None or config.model is None:
            raise InvalidInputError("server", "--server HOST:PORT and --model NAME together", "none")
        self.workload = workload
        self.config = config
        self.space = space
        self.client: Any = None
        self.info: ModelInfo | None = None
        self._notes: list[str] = []

    def open(self) -> None:
        """Connect, read the model, and check it against the workload and the feature space.

        A failed call raises the client's error (the CLI: one line, exit status 3), as during the runs.
        """
        from knnserve_client import Client

        config = self.config
        assert config.server is not None and config.model is not None
        self.client = Client(config.server, timeout=config.server_timeout, tls=config.server_tls, token=config.server_token)
        self.info = self.client.model(config.model)
        check_served_model(self.info, self.workload, self.space)
        first = self.client.search(config.model, self.workload.queries[:CHECK_ROWS], version=self.info.version, k=config.search_k)
        check_labels(first.ids, first.labels, self.workload, config.model)
        check_space(first.distances, first.ids, self.space, config.model)

    def _info(self) -> ModelInfo:
        assert self.info is not None, "open() first"
        return self.info

    def describe(self) -> Description:
        """The served index as the report shows it."""
        info = self._info()
        facts: dict[str, Any] = {"spec": info.index.spec, "factory": info.index.factory, "storage": "as served",
                                 "kind": info.index.kind, "metric": info.index.metric, "model": info.name,
                                 "version": info.version}
        if info.index.nlist is not None:
            facts["nlist"] = info.index.nlist
        return Description(
            label=f"{info.index.factory} (gRPC {info.name} v{info.version})",
            system="knnserve",
            transport="grpc",
            index=facts,
            exact=is_exact(info.index.factory, info.input_dtype, preprocessed=info.index.dim != info.dim),
            notes=(f"Search RPC to {self.config.server} through knnserve_client; "
                   f"{self.workload.queries.dtype} rows on the wire", *self._notes),
            space=self.space.key,
        )

    def settings(self) -> list[Setting]:
        """The sweep of the served index's kind (capped at nlist), else the model's defaults."""
        info = self._info()
        queries, self._notes = sweep_queries(info.index.kind, info.index.nlist, self.config)
        if queries == [KnnQuery()]:  # no sweep: the served defaults
            queries = [info.defaults.replace(k=None, weights=None, tie_break=None, top_n=None)]
        return [Setting(query.replace(k=self.config.search_k)) for query in queries]

    def prepare(self, queries: np.ndarray) -> np.ndarray:
        """Rows as they are (uint8 stays uint8 on the wire)."""
        return queries

    def search(self, rows: np.ndarray, setting: Setting) -> Answer:
        """One ``Client.search`` call (split by the client under the server's limits)."""
        info = self._info()
        query = setting.query
        result = self.client.search(self.config.model, rows, version=info.version, k=query.k, nprobe=query.nprobe,
                                    ef_search=query.ef_search)
        return result.distances, result.ids

    def finish(self, answer: Answer) -> Answer:
        """Distances come on the true scale."""
        return answer

    def close(self) -> None:
        """Close the channel."""
        if self.client is not None:
            self.client.close()
            self.client = None


__all__ = ["RemoteServer", "check_labels", "check_served_model", "check_space"]
