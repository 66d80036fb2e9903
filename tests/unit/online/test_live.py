"""LiveModel: adds and removals on every index kind, replay equals live, retries apply once, snapshots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from knnserve.errors import InvalidInputError
from knnserve.model import KNNModel
from knnserve.online import LiveModel, ModelMovedError, OnlineLimits
from knnserve_client.wire.errors import RequestTooLargeError
from knnserve_client.wire.query import KnnQuery

KINDS = ["flat", "IVF8,Flat", "IVF8,PQ4x4", "HNSW16"]


@pytest.fixture
def data(blobs: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x_train, y_train, x_test, _ = blobs
    return x_train, y_train, x_test


def _model(data: tuple[np.ndarray, ...], index: str = "flat") -> KNNModel:
    x, y, _ = data
    return KNNModel.fit(x, y, class_names=("a", "b", "c", "d"), index=index)


def _query(model: KNNModel, k: int = 1) -> KnnQuery:
    return model.resolve(KnnQuery(k=k, nprobe=8 if model.nlist else None))


@pytest.mark.parametrize("kind", KINDS)
def test_added_rows_are_found_and_vote_on_every_index_kind(data: tuple, kind: str, tmp_path: Path) -> None:
    model = _model(data, kind)
    live = LiveModel(model, tmp_path / "log", sync=False)
    far = np.zeros((3, 16), dtype=np.float32)
    for row in range(3):
        far[row, 4 * row : 4 * row + 4] = 40.0  # far from the training rows and from each other
    result = live.add(model.prepare(far), ["new", "new", "b"])
    assert result.ids.tolist() == [600, 601, 602]
    assert model.class_names[-1] == "new" and model.n_classes == 5
    found = model.classify(far, _query(model))
    assert found.ids[:, 0].tolist() == [600, 601, 602]
    assert found.predictions.tolist() == [4, 4, 1]


@pytest.mark.parametrize("kind", KINDS)
def test_removal_is_invisible_at_once(data: tuple, kind: str, tmp_path: Path) -> None:
    model = _model(data, kind)
    live = LiveModel(model, tmp_path / "log", sync=False)
    x = data[0]
    before = model.classify(x[:20], _query(model, k=3)).ids
    assert (before[:, 0] == np.arange(20)).all()
    live.remove(np.arange(10))
    after = model.classify(x[:20], _query(model, k=3)).ids
    assert not np.isin(after, np.arange(10)).any()
    assert (after[10:, 0] == np.arange(10, 20)).all()


@pytest.mark.parametrize("kind", KINDS)
def test_replay_equals_live(data: tuple, kind: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    model = _model(data, kind)
    live = LiveModel(model, tmp_path / "log")
    for step in range(6):
        rows = rng.normal(scale=3, size=(5, 16)).astype(np.float32)
        live.add(model.prepare(rows), ["a", "zeta", "b", "zeta", f"c{step % 2}"], request_id=f"r{step}")
        live.remove([step * 7, 600 + step])
    probe = np.concatenate([data[2][:40], rng.normal(scale=3, size=(20, 16)).astype(np.float32)])
    expected = model.classify(probe, _query(model, k=5))
    live.close()

    again = _model(data, kind)
    replayed = LiveModel(again, tmp_path / "log")
    assert again.class_names == model.class_names
    assert replayed.added == live.added == 30
    assert replayed.removed.tolist() == live.removed.tolist()
    got = again.classify(probe, _query(again, k=5))
    np.testing.assert_array_equal(got.ids, expected.ids)
    np.testing.assert_array_equal(got.predictions, expected.predictions)


def test_retry_with_the_same_request_id_applies_once(data: tuple, tmp_path: Path) -> None:
    model = _model(data)
    live = LiveModel(model, tmp_path / "log")
    row = model.prepare(np.ones((1, 16), np.float32))
    first = live.add(row, ["a"], request_id="once")
    again = live.add(row, ["a"], request_id="once")
    assert again.duplicate and not first.duplicate
    assert again.ids.tolist() == first.ids.tolist() and again.position == first.position
    assert model.ntotal == 601
    live.close()
    replayed = LiveModel(_model(data), tmp_path / "log")
    assert replayed.model.ntotal == 601
    assert replayed.add(row, ["a"], request_id="once").duplicate  # remembered across a restart


def test_bad_input_writes_nothing(data: tuple, tmp_path: Path) -> None:
    model = _model(data)
    live = LiveModel(model, tmp_path / "log", limits=OnlineLimits(max_rows_per_add=4))
    size = (tmp_path / "log").stat().st_size
    row = model.prepare(np.ones((1, 16), np.float32))
    with pytest.raises(InvalidInputError, match=r"labels\[0\]"):
        live.add(row, [""])
    with pytest.raises(InvalidInputError, match="labels"):
        live.add(row, ["a", "b"])
    with pytest.raises(InvalidInputError, match="ids"):
        live.remove([600])
    with pytest.raises(InvalidInputError, match="ids"):
        live.remove([-1])
    with pytest.raises(InvalidInputError, match="ids"):
        live.remove([])
    with pytest.raises(InvalidInputError, match="request_id"):
        live.add(row, ["a"], request_id="x" * 200)
    with pytest.raises(RequestTooLargeError, match="rows per add"):
        live.add(model.prepare(np.ones((5, 16), np.float32)), ["a"] * 5)
    assert (tmp_path / "log").stat().st_size == size
    assert model.ntotal == 600 and live.added == 0


def test_a_full_log_asks_for_a_snapshot(data: tuple, tmp_path: Path) -> None:
    model = _model(data)
    live = LiveModel(model, tmp_path / "log", limits=OnlineLimits(max_log_bytes=300), sync=False)
    row = model.prepare(np.ones((2, 16), np.float32))
    live.add(row, ["a", "a"])
    live.add(row, ["a", "a"])
    with pytest.raises(RequestTooLargeError, match="snapshot"):
        live.add(row, ["a", "a"])


@pytest.mark.parametrize("kind", KINDS)
def test_snapshot_equals_replay_and_drops_removed_rows(data: tuple, kind: str, tmp_path: Path) -> None:
    model = _model(data, kind)
    live = LiveModel(model, tmp_path / "log", sync=False)
    rng = np.random.default_rng(3)
    added = rng.normal(scale=3, size=(8, 16)).astype(np.float32)
    live.add(model.prepare(added), ["e"] * 8)
    live.remove([0, 5, 603])
    probe = data[2][:50]
    expected = model.classify(probe, _query(model, k=3))
    snap = live.snapshot(tmp_path / "v2", name="m")
    loaded = KNNModel.load(tmp_path / "v2")
    assert loaded.ntotal == 600 + 8 - 3 and loaded.class_names == ("a", "b", "c", "d", "e")
    got = loaded.classify(probe, _query(loaded, k=3))
    # Ids are renumbered (removed ones dropped); the neighbours' labels and the votes are the same.
    if not kind.startswith("HNSW"):  # a new graph over the same vectors may order near-ties differently
        np.testing.assert_array_equal(got.neighbor_labels, expected.neighbor_labels)
    np.testing.assert_array_equal(got.predictions, expected.predictions)
    assert snap.ntotal == loaded.ntotal
    with pytest.raises(ModelMovedError):
        live.add(model.prepare(added[:1]), ["e"])


def test_the_linear_head_does_not_know_a_class_added_online(data: tuple, tmp_path: Path) -> None:
    from knnserve.linear import LinearClassifier

    x, y, _ = data
    model = _model(data).with_linear(LinearClassifier(epochs=2, seed=1).fit(x, y))
    live = LiveModel(model, tmp_path / "log", sync=False)
    assert dict(model.head_classes()) == {"knn": 4, "linear": 4}
    far = np.full((2, 16), 40.0, dtype=np.float32)
    live.add(model.prepare(far), ["new", "new"])
    assert dict(model.head_classes()) == {"knn": 5, "linear": 4}
    assert model.classify(far, _query(model)).predictions.tolist() == [4, 4]
    predictions, probabilities = model.predict_linear(model.prepare(far))
    assert probabilities.shape == (2, 5) and (probabilities[:, 4] == 0).all() and (predictions < 4).all()
    snap = live.snapshot(tmp_path / "v2", name="m")  # carried over as it is: still 4 classes
    loaded = KNNModel.load(tmp_path / "v2")
    assert dict(loaded.head_classes()) == {"knn": 5, "linear": 4} == dict(snap.head_classes())


def test_added_rows_are_searched_beside_the_exact_kernel(pixels: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    import faiss

    x, y = pixels
    model = KNNModel.fit(x, y, class_names=("a", "b", "c"), index="flat")
    assert model.kernel_plan.name == "exact-int8"
    live = LiveModel(model, tmp_path / "log", sync=False)
    rng = np.random.default_rng(4)
    added = np.concatenate([x[:20], rng.integers(0, 256, size=(30, 6, 6)).astype(np.uint8)])  # 20 exact copies: ties
    live.add(model.prepare(added), ["a"] * 50)
    queries = np.concatenate([x[:40], added[20:40]])
    calls: list[int] = []
    kernel = model.exact_kernel_search
    model.exact_kernel_search = lambda rows, query: calls.append(rows.shape[0]) or kernel(rows, query)  # type: ignore[method-assign]
    got = model.search(model.prepare(queries), _query(model, k=7))
    assert calls and calls[0] == 60  # the kernel answered the bundle's rows
    everything = faiss.IndexFlatL2(36)
    everything.add(np.concatenate([x, added]).reshape(-1, 36).astype(np.float32))
    distances, ids = everything.search(queries.reshape(-1, 36).astype(np.float32), 7)
    np.testing.assert_array_equal(got[1], ids)  # the same neighbours, ties by the lower id
    np.testing.assert_allclose(got[0], np.sqrt(distances), rtol=1e-6)
