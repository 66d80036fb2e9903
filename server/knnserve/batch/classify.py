"""Classifying rows in this process with a KNNModel, the way the data plane does: prepare, search, vote, top-n."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from knnserve.batch.results import ResultBatch, assemble
from knnserve.batch.rows import RowBatch, RowSpec
from knnserve.batch.spec import ModelFacts
from knnserve.bundle import MANIFEST
from knnserve.dataplane.plane import head_result
from knnserve.model import KNNModel
from knnserve_client.wire.errors import InvalidInputError
from knnserve_client.wire.messages import HeadResult, Neighbors
from knnserve_client.wire.query import KnnQuery


class ModelClassifier:
    """A loaded model with the job's query resolved once; classifies a shard's good rows, all heads asked for.

    Parameters
    ----------
    model : the bundle, loaded (and verified) once per process.
    query : the job's k-NN options; resolved here against the model (defaults filled in, k <= ntotal, ...).
    heads : "knn" and/or "linear".
    neighbors : also return each row's neighbours (needs the k-NN head).
    """

    def __init__(self, model: KNNModel, query: KnnQuery, heads: tuple[str, ...], *, neighbors: bool = False) -> None:
        for head in heads:
            if head not in model.heads:
                raise InvalidInputError("--method", f"heads this model has ({', '.join(model.heads)})", head)
        if neighbors and "knn" not in heads:
            raise InvalidInputError("--neighbors", "the k-NN head (--method knn or both): neighbours come from it", "--method linear")
        self.model = model
        self.query = model.resolve(query)
        self.heads = heads
        self.neighbors = neighbors

    def classify(self, rows: RowBatch) -> ResultBatch:
        """Results for every row of ``rows`` (the bad ones keep their errors and are not classified)."""
        good = rows.good
        answers: dict[str, HeadResult] = {}
        found: Neighbors | None = None
        top_n = self.query.top_n or 0
        if good.any():
            prepared = self.model.prepare(rows.x[good], field="input")
            for head in self.heads:
                if head == "knn":
                    voted = self.model.classify_prepared(prepared, self.query)
                    answers[head] = head_result(voted.predictions, voted.probabilities, top_n)
                    if self.neighbors:
                        found = Neighbors(voted.ids.astype(np.int64), voted.distances.astype(np.float32), voted.neighbor_labels)
                else:
                    predictions, probabilities = self.model.predict_linear(prepared)
                    answers[head] = head_result(predictions, probabilities, top_n)
        else:
            k = self.query.k or 0
            empty = HeadResult(np.zeros(0, np.int64), np.zeros((0, top_n), np.int32), np.zeros((0, top_n), np.float32))
            answers = dict.fromkeys(self.heads, empty)
            if self.neighbors:
                found = Neighbors(np.zeros((0, k), np.int64), np.zeros((0, k), np.float32), np.zeros((0, k), np.int64))
        return assemble(rows, answers, found)




def bundle_version(path: Path) -> int:
    """A bundle's version as the server would serve it: its folder name under NAME/VERSION/, else 1 (like ``serve --model``)."""
    name = Path(path).resolve().name
    return int(name) if name.isdigit() and int(name) >= 1 else 1


def bundle_facts(path: Path, model: KNNModel, query: KnnQuery) -> ModelFacts:
    """The facts a job needs about a bundle on disk; its identity is the sha256 of its manifest (which lists every file's)."""
    manifest = model.manifest
    assert manifest is not None, "a loaded bundle has a manifest"
    digest = hashlib.sha256((Path(path) / MANIFEST).read_bytes()).hexdigest()
    version = bundle_version(path)
    return ModelFacts(
        row_spec=RowSpec(model.input_shape, str(model.input_dtype)),
        name=manifest.name,
        version=version,
        class_names=model.class_names,
        query=query,
        identity={"bundle_sha256": digest, "name": manifest.name, "version": version},
        bundle_bytes=sum(entry.bytes for entry in manifest.files.values()),
    )


__all__ = ["ModelClassifier", "bundle_facts", "bundle_version"]
