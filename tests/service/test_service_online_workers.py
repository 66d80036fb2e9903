"""serve --workers 2 with writes: an add acknowledged by one process is seen by the next search on any process,
and a snapshot taken through one process moves every process to the new version."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from service_bundles import blob_data, save_model

from knnserve_client.wire.status import REQUEST_ID_KEY
from knnserve_client.wire.v1.tensors import from_tensor, to_tensor
from knnserve_client.wire.v1 import knnserve_pb2 as pb
from knnserve_client.wire.v1 import knnserve_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from servers import free_port, stop, wait_until_serving  # noqa: E402

WRITE = "write-token"
AUTH = (("authorization", f"Bearer {WRITE}"),)
ROUNDS = 24


@pytest.fixture
def target(tmp_path: Path) -> Iterator[str]:
    save_model(tmp_path / "models", "blobs", 1, blob_data(21))
    (tmp_path / "token").write_text(WRITE)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "knnserve.cli", "serve", "--models", str(tmp_path / "models"), "--port", str(port),
         "--workers", "2", "--online-dir", str(tmp_path / "logs"), "--write-token-file", str(tmp_path / "token"),
         "--drain", "0", "--grace", "1", "--log-level", "WARNING"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    address = f"127.0.0.1:{port}"
    try:
        wait_until_serving(address, process, "knnserve --workers 2")
        seen: set[str] = set()
        deadline = time.monotonic() + 60
        while len(seen) < 2 and time.monotonic() < deadline:  # each worker binds once its models are loaded
            seen.add(_call(address, "GetModel", pb.GetModelRequest(name="blobs"))[1])
        assert len(seen) == 2, "the second worker never answered"
        yield address
    finally:
        stop(process, 30)


def _call(address: str, method: str, request: object) -> tuple[object, str]:
    """One call on a fresh channel (its own connection, so any worker may answer): (response, process prefix)."""
    with grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
        response, call = getattr(knnserve_pb2_grpc.KnnServeStub(channel), method).with_call(request, metadata=AUTH, timeout=20)
    return response, dict(call.trailing_metadata())[REQUEST_ID_KEY][:12]


def test_an_add_on_one_worker_is_seen_by_the_next_search_on_any(target: str) -> None:
    rng = np.random.default_rng(5)
    crossed = 0
    for number in range(ROUNDS):
        row = (40 + rng.normal(size=(1, 16))).astype(np.float32)
        added, writer = _call(target, "AddExamples", pb.AddExamplesRequest(model="blobs", inputs=to_tensor(row),
                                                                            labels=["new"], request_id=f"add-{number}"))
        found, reader = _call(target, "Search", pb.SearchRequest(model="blobs", inputs=to_tensor(row), k=1))
        ids = from_tensor(found.neighbors.ids, field="ids")
        assert int(ids[0, 0]) == int(from_tensor(added.ids, field="ids")[0]), (number, writer, reader)
        crossed += writer != reader
    assert crossed > 0  # some searches ran on the other process than the add


def test_a_snapshot_through_one_worker_moves_every_worker(target: str) -> None:
    row = np.full((1, 16), 33.0, np.float32)
    _call(target, "AddExamples", pb.AddExamplesRequest(model="blobs", inputs=to_tensor(row), labels=["x"]))
    snap, _ = _call(target, "SnapshotModel", pb.SnapshotModelRequest(model="blobs"))
    assert (snap.version, snap.ntotal) == (2, 401)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        versions = {_call(target, "GetModel", pb.GetModelRequest(name="blobs"))[0].model.version for _ in range(8)}
        if versions == {2}:
            break
        time.sleep(0.2)
    assert versions == {2}
    added, _ = _call(target, "AddExamples", pb.AddExamplesRequest(model="blobs", inputs=to_tensor(row + 1), labels=["x"]))
    assert added.version == 2 and int(from_tensor(added.ids, field="ids")[0]) == 401
    found, _ = _call(target, "Search", pb.SearchRequest(model="blobs", inputs=to_tensor(row + 1), k=1))
    assert int(from_tensor(found.neighbors.ids, field="ids")[0, 0]) == 401
