"""Writes on a real server with a real log on disk: adds, removals, retries, tokens, limits, bad input, snapshots."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from service_bundles import TinyData, blob_data, save_model

from knnserve.online.config import OnlineConfig, OnlineLimits
from knnserve.service.config import ServeConfig
from knnserve.service.server import KnnServer
from knnserve_client import Client
from knnserve_client.wire.status import (
    PermissionDeniedError,
    TooLargeError,
    UnauthenticatedError,
)
from knnserve_client.wire.v1 import knnserve_pb2 as pb

READ, WRITE = "read-token", "write-token"


@pytest.fixture
def data() -> TinyData:
    return blob_data(11)


@pytest.fixture
def online(tmp_path: Path, data: TinyData) -> Iterator[Callable[..., tuple[KnnServer, str]]]:
    """Start servers on tmp_path/models (model "blobs", version 1) with logs in tmp_path/logs."""
    save_model(tmp_path / "models", "blobs", 1, data)
    started: list[KnnServer] = []

    def start(*, limits: OnlineLimits | None = None, token: str | None = READ, writes: bool = True) -> tuple[KnnServer, str]:
        config = ServeConfig(models_dir=tmp_path / "models", port=0, grace_s=1.0, token=token,
                             online=OnlineConfig(tmp_path / "logs", limits or OnlineLimits()) if writes else None,
                             write_token=WRITE if writes else None)
        server = KnnServer(config)
        started.append(server)
        port = server.start()
        server.load_models()
        return server, f"127.0.0.1:{port}"

    yield start
    for server in started:
        server.stop(0)


def _far_rows(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (30.0 + rng.normal(size=(n, 16))).astype(np.float32)


def test_an_added_example_is_classified_at_once_with_its_new_class(online: Callable, data: TinyData) -> None:
    _, target = online()
    rows = _far_rows(3)
    with Client(target, token=WRITE) as client:
        added = client.add_examples("blobs", rows, ["zebra"] * 3)
        assert added.ids.tolist() == [400, 401, 402] and added.version == 1 and not added.duplicate
        result = client.classify("blobs", rows[:1], k=3)
        info = client.model("blobs")
        assert info.class_names[-1] == "zebra"
        assert info.class_names[int(result.predictions[0])] == "zebra"
        assert dict(result.head_classes) == {"knn": 5}
        state = client.online_state("blobs")
        assert state is not None and state.writable
        assert (state.added, state.removed, state.log_position) == (3, 0, 1)
        assert dict(state.head_classes) == {"knn": 5}


def test_retry_with_a_request_id_applies_once(online: Callable) -> None:
    _, target = online()
    with Client(target, token=WRITE) as client:
        first = client.add_examples("blobs", _far_rows(2), ["a", "b"], request_id="retry-1")
        again = client.add_examples("blobs", _far_rows(2), ["a", "b"], request_id="retry-1")
        assert again.duplicate and again.ids.tolist() == first.ids.tolist()
        assert again.log_position == first.log_position
        assert client.model("blobs").index.ntotal == 402


def test_removal_is_invisible_to_the_next_search(online: Callable, data: TinyData) -> None:
    _, target = online()
    with Client(target, token=WRITE) as client:
        before = client.search("blobs", data.x_train[:5], k=1).ids[:, 0]
        assert before.tolist() == [0, 1, 2, 3, 4]
        client.remove_examples("blobs", [0, 2])
        after = client.search("blobs", data.x_train[:5], k=5).ids
        assert not np.isin(after, [0, 2]).any()
        assert client.online_state("blobs").removed == 2


def test_tokens(online: Callable) -> None:
    _, target = online()
    rows = _far_rows(1)
    with Client(target, token=READ) as client:
        client.classify("blobs", rows)  # reads with the read token
        with pytest.raises(PermissionDeniedError, match="read token cannot write"):
            client.add_examples("blobs", rows, ["a"])
    with Client(target) as client, pytest.raises(UnauthenticatedError):
        client.add_examples("blobs", rows, ["a"])
    with Client(target, token=WRITE) as client:
        client.classify("blobs", rows)  # the write token reads too
        assert client.online_state("blobs").added == 0


def test_a_server_without_writes_refuses_them(online: Callable) -> None:
    _, target = online(writes=False, token=None)
    with Client(target) as client:
        with pytest.raises(PermissionDeniedError, match="takes no writes"):
            client.add_examples("blobs", _far_rows(1), ["a"])
        assert client.online_state("blobs") is None


def test_limits(online: Callable) -> None:
    _, target = online(limits=OnlineLimits(max_rows_per_add=4, max_log_bytes=600))
    with Client(target, token=WRITE) as client:
        with pytest.raises(TooLargeError, match="rows per add"):
            client.add_examples("blobs", _far_rows(5), ["a"] * 5)
        client.add_examples("blobs", _far_rows(4), ["a"] * 4)
        client.add_examples("blobs", _far_rows(4), ["a"] * 4)
        with pytest.raises(TooLargeError, match="snapshot"):
            client.add_examples("blobs", _far_rows(4), ["a"] * 4)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.AddExamplesRequest(model="blobs", labels=["a"]), "inputs"),
        ("shape", "inputs.shape"),
        ("dtype", "inputs.dtype"),
        ("empty label", "labels[0]"),
        ("label count", "labels"),
        (pb.RemoveExamplesRequest(model="blobs", ids=[10_000]), "ids"),
        (pb.RemoveExamplesRequest(model="blobs", ids=[]), "ids"),
        ("no model", "model"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_nothing_is_written(online: Callable, tmp_path: Path,
                                                                       request_: object, field: str) -> None:
    from knnserve_client.wire.v1.tensors import to_tensor

    _, target = online()
    tensors = {
        "shape": pb.AddExamplesRequest(model="blobs", inputs=to_tensor(np.zeros((1, 15), np.float32)), labels=["a"]),
        "dtype": pb.AddExamplesRequest(model="blobs", inputs=to_tensor(np.zeros((1, 16), np.int64)), labels=["a"]),
        "empty label": pb.AddExamplesRequest(model="blobs", inputs=to_tensor(np.zeros((1, 16), np.float32)), labels=[""]),
        "label count": pb.AddExamplesRequest(model="blobs", inputs=to_tensor(np.zeros((2, 16), np.float32)), labels=["a"]),
        "no model": pb.AddExamplesRequest(model="", inputs=to_tensor(np.zeros((1, 16), np.float32)), labels=["a"]),
    }
    request = tensors[request_] if isinstance(request_, str) else request_
    logs = sorted((tmp_path / "logs").rglob("*.wal"))
    sizes = [path.stat().st_size for path in logs]
    with grpc.insecure_channel(target) as channel:
        method = "AddExamples" if isinstance(request, pb.AddExamplesRequest) else "RemoveExamples"
        response = pb.AddExamplesResponse if method == "AddExamples" else pb.RemoveExamplesResponse
        call = channel.unary_unary(f"/knnserve.v1.KnnServe/{method}", request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=response.FromString)
        with pytest.raises(grpc.RpcError) as caught:
            call(request, metadata=(("authorization", f"Bearer {WRITE}"),), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith(field)
    assert [path.stat().st_size for path in logs] == sizes
    with Client(target, token=WRITE) as client:
        assert client.online_state("blobs").added == 0


def test_restart_replays_and_snapshot_equals_replay(online: Callable, tmp_path: Path, data: TinyData) -> None:
    server, target = online()
    probe = np.concatenate([data.x_query, _far_rows(8, seed=5)])
    with Client(target, token=WRITE) as client:
        client.add_examples("blobs", _far_rows(6, seed=5), ["new"] * 6)
        client.remove_examples("blobs", [1, 3, 401])
        live = client.classify("blobs", probe, k=3)
        names = client.model("blobs").class_names
    server.stop(0)

    server, target = online()  # a restart replays the log
    with Client(target, token=WRITE) as client:
        replayed = client.classify("blobs", probe, k=3)
        np.testing.assert_array_equal(replayed.predictions, live.predictions)
        snap = client.snapshot("blobs")
        assert (snap.version, snap.previous_version, snap.ntotal) == (2, 1, 400 + 6 - 3)
        after = client.classify("blobs", probe, k=3)
        assert after.version == 2 and client.model("blobs").class_names == names
        np.testing.assert_array_equal(after.predictions, live.predictions)
        state = client.online_state("blobs")
        assert (state.added, state.removed, state.log_position, state.writable) == (0, 0, 0, True)
        assert not client.online_state("blobs", version=1).writable
        client.add_examples("blobs", _far_rows(1, seed=9), ["later"])  # goes to version 2
        assert client.online_state("blobs").added == 1
    assert (tmp_path / "models" / "blobs" / "1" / "manifest.json").is_file()


def test_kill_9_under_concurrent_writers_keeps_every_acknowledged_row_once(tmp_path: Path, data: TinyData) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from online_crash import crash_round

    save_model(tmp_path / "models", "blobs", 1, data)
    token_file = tmp_path / "write-token"
    token_file.write_text(WRITE + "\n")
    total = 0
    for round_number in range(2):
        counts = crash_round(tmp_path / "models", tmp_path / "logs", token_file, model="blobs", dim=16,
                             round_number=round_number, writers=8, write_s=0.7)
        assert counts.acknowledged > counts.in_flight >= 0
        assert counts.present == counts.acknowledged, counts
        assert counts.duplicated == 0, counts
        total += counts.acknowledged
    # The log holds every acknowledged row once: a replay in this process counts them.
    from knnserve.model import KNNModel
    from knnserve.online.live import LiveModel

    (log,) = (tmp_path / "logs" / "blobs").glob("1-*.wal")
    replayed = LiveModel(KNNModel.load(tmp_path / "models" / "blobs" / "1"), log)
    assert replayed.added == total


def test_the_examples_commands(online: Callable, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from knnserve.cli import main

    _, target = online()
    np.save(tmp_path / "rows.npy", _far_rows(3, seed=2))
    token = tmp_path / "write-token-file"
    token.write_text(WRITE)
    common = ["--server", target, "--token-file", str(token), "--model", "blobs"]
    assert main(["examples", "add", *common, "--input", str(tmp_path / "rows.npy"), "--label", "cli"]) == 0
    added = json.loads(capsys.readouterr().out)
    assert (added["added"], added["first_id"], added["last_id"]) == (3, 400, 402)
    assert main(["examples", "remove", *common, "--ids", "400,5"]) == 0
    assert json.loads(capsys.readouterr().out)["removed"] == 2
    assert main(["examples", "status", *common]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["added"], status["removed"], status["head_classes"]) == (3, 2, {"knn": 5})
    assert main(["examples", "snapshot", *common]) == 0
    assert json.loads(capsys.readouterr().out)["ntotal"] == 401
    read_token = tmp_path / "read-token-file"
    read_token.write_text(READ)
    assert main(["examples", "add", "--server", target, "--token-file", str(read_token), "--model", "blobs",
                 "--input", str(tmp_path / "rows.npy"), "--label", "cli"]) == 3  # PERMISSION_DENIED: the server refused
    assert "PERMISSION_DENIED" in capsys.readouterr().err
