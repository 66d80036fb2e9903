"""Classifying rows in this process with a KNNModel, the way the data plane does: prepare, search, vote, top-n."""

from __future__ import annotations

import hashlib
from concurrent.futures import Executor, Future
from pathlib import Path


from knnserve.answers import answer, no_answers
from knnserve.batch.results import ResultBatch, assemble
from knnserve.batch.rows import RowBatch, RowSpec
from knnserve.batch.spec import ModelFacts
from knnserve.bundle import MANIFEST
from knnserve.model import KNNModel
from knnserve.versions import bundle_version
from knnserve_client.wire.errors import InvalidInputError
from knnserve_client.wire.query import KnnQuery

# Rows searched at once. Several single-threaded searches of this size in parallel kept up with one
# FAISS search of the whole batch on all cores here (Flat, Fashion-MNIST, 2 cores: 3.6 s vs 3.9 s for
# 6,144 rows, medians of 4), and suffer far less when other processes take a core: an OpenMP team
# waits at every barrier for its slowest thread.
SEARCH_ROWS = 1024


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

    def classify(self, rows: RowBatch, pool: Executor | None = None) -> ResultBatch:
        """Results for every row of ``rows`` (the bad ones keep their errors and are not classified).

        Rows are searched in pieces of SEARCH_ROWS shard rows, cut at the same places whoever calls
        (so every engine searches the same groups of rows and writes the same bytes), on ``pool``'s
        threads when given.
        """
        return ResultBatch.join([future.result() for future in self.submit(rows, pool)])

    def submit(self, rows: RowBatch, pool: Executor | None = None) -> list[Future[ResultBatch]]:
        """Start classifying ``rows`` piece by piece on ``pool`` (or now, on this thread); one future a piece."""
        futures: list[Future[ResultBatch]] = []
        for piece in rows.pieces(SEARCH_ROWS):
            if pool is not None:
                futures.append(pool.submit(self.classify_piece, piece))
            else:
                done: Future[ResultBatch] = Future()
                done.set_result(self.classify_piece(piece))
                futures.append(done)
        return futures

    def classify_piece(self, rows: RowBatch) -> ResultBatch:
        """Results for a piece of at most SEARCH_ROWS rows: one search, one vote, per head."""
        good = rows.good
        top_n = self.query.top_n or 0
        if good.any():
            prepared = self.model.prepare(rows.x[good], field="input")
            voted = self.model.classify_prepared(prepared, self.query) if "knn" in self.heads else None
            answers = answer(self.model, self.heads, top_n, voted=voted, rows=prepared, with_neighbors=self.neighbors)
        else:
            answers = no_answers(self.heads, top_n, self.query.k or 0, with_neighbors=self.neighbors)
        return assemble(rows, answers.heads(), answers.neighbors)


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


__all__ = ["SEARCH_ROWS", "ModelClassifier", "bundle_facts"]
