"""knnserve batch --server: the local engine's output through a real server, under its limits, through UNAVAILABLE."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from conftest import Fixture, ServerFactory
from knnserve.batch import JobSpec, run_job
from knnserve.batch.engines.local import LocalEngine
from knnserve.batch.engines.server import ServerEngine
from knnserve_client import KnnQuery


def spec(inputs: Path, out: Path, **options: object) -> JobSpec:
    return JobSpec(inputs=(str(inputs),), out=out, progress=False, shard_rows=50, **options)  # type: ignore[arg-type]


def test_server_engine_writes_what_the_local_engine_writes(models: Fixture, start_server: ServerFactory, tmp_path: Path) -> None:
    _, address = start_server(max_rows_per_request=7)  # every request is split by the client under the server's limit
    x = np.concatenate([models.pix.x_query] * 5)
    np.save(tmp_path / "q.npy", x)
    options = {"neighbors": True, "query": KnnQuery(k=4, weights="distance", top_n=2)}
    local = run_job(spec(tmp_path / "q.npy", tmp_path / "local", **options), LocalEngine(models.root / "pixels" / "1"))
    served = run_job(spec(tmp_path / "q.npy", tmp_path / "served", **options),
                     ServerEngine(address, "pixels", in_flight=3, request_rows=20))
    assert local.rows == served.rows == len(x) and served.errors == 0
    left, right = pq.read_table(tmp_path / "local"), pq.read_table(tmp_path / "served")
    assert left.column_names == right.column_names
    for name in left.column_names:
        if name == "neighbor_distances":  # float32 from another process: equal to rounding
            np.testing.assert_allclose(np.array(left[name].to_pylist()), np.array(right[name].to_pylist()), rtol=1e-6)
        else:
            assert left[name].to_pylist() == right[name].to_pylist(), name


def test_server_engine_retries_while_the_server_answers_unavailable(models: Fixture, start_server: ServerFactory,
                                                                    tmp_path: Path) -> None:
    server, address = start_server(load=False)  # UNAVAILABLE ("models are still loading") until load_models()
    np.save(tmp_path / "q.npy", models.blobs.x_query)
    loader = threading.Timer(1.5, server.load_models)
    loader.start()
    engine = ServerEngine(address, "blobs", retry_seconds=30)
    started = time.monotonic()
    summary = run_job(spec(tmp_path / "q.npy", tmp_path / "out"), engine)
    loader.join()
    assert time.monotonic() - started >= 1.0
    assert summary.rows == len(models.blobs.x_query) and summary.extra["unavailable_retries"] >= 1
    expected = models.blobs_v2.classify(models.blobs.x_query).predictions  # the newest version, pinned for the job
    assert pq.read_table(tmp_path / "out").column("prediction").to_pylist() == expected.tolist()
