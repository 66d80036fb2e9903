"""Exact ground truth: matches brute force, and its disk cache is hit, missed and invalidated as it should be."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from knnserve.evaluate import groundtruth
from knnserve.evaluate.groundtruth import cache_path, compute_ground_truth, ground_truth


def _brute(base: np.ndarray, queries: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    diff = base[None, :, :].astype(np.float64) - queries[:, None, :].astype(np.float64)
    dist = np.sqrt((diff**2).sum(axis=2)) if metric == "l2" else np.abs(diff).sum(axis=2)
    order = np.lexsort((np.broadcast_to(np.arange(base.shape[0]), dist.shape), dist), axis=1)[:, :k]
    return order, np.take_along_axis(dist, order, axis=1)


@pytest.mark.parametrize("metric", ["l2", "l1"])
def test_ground_truth_equals_brute_force_on_uint8_rows(metric: str, rng: np.random.Generator) -> None:
    # Large pixel values and few distinct levels make float32 rounding and exact ties both likely.
    base = rng.choice(np.array([0, 128, 255], dtype=np.uint8), size=(300, 24))
    queries = rng.choice(np.array([0, 128, 255], dtype=np.uint8), size=(40, 24))
    ids, dist = compute_ground_truth(base, queries, 7, metric)
    want_ids, want_dist = _brute(base, queries, 7, metric)
    np.testing.assert_array_equal(dist, want_dist)
    np.testing.assert_array_equal(ids, want_ids)  # ties ordered by id


def test_cache_is_hit_the_second_time(tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    base = rng.normal(size=(200, 8)).astype(np.float32)
    queries = rng.normal(size=(20, 8)).astype(np.float32)
    first = ground_truth(base, queries, 5, "l2", cache_dir=tmp_path)
    assert not first.cached and cache_path(tmp_path, first.key).is_file()

    def must_not_compute(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(groundtruth, "compute_ground_truth", must_not_compute)
    second = ground_truth(base, queries, 5, "l2", cache_dir=tmp_path)
    assert second.cached and second.key == first.key
    np.testing.assert_array_equal(second.ids, first.ids)
    np.testing.assert_array_equal(second.distances, first.distances)


def test_cache_is_invalidated_when_the_data_or_settings_change(tmp_path: Path, rng: np.random.Generator) -> None:
    base = rng.normal(size=(200, 8)).astype(np.float32)
    queries = rng.normal(size=(20, 8)).astype(np.float32)
    first = ground_truth(base, queries, 5, "l2", cache_dir=tmp_path)
    changed = base.copy()
    changed[17, 3] += 1.0
    for args in ((changed, queries, 5, "l2"), (base, queries[:19], 5, "l2"), (base, queries, 6, "l2"), (base, queries, 5, "l1")):
        again = ground_truth(*args, cache_dir=tmp_path)  # type: ignore[arg-type]
        assert not again.cached and again.key != first.key
    want_ids, _ = _brute(changed, queries, 5, "l2")
    np.testing.assert_array_equal(ground_truth(changed, queries, 5, "l2", cache_dir=tmp_path).ids, want_ids)


def test_a_damaged_cache_file_is_recomputed(tmp_path: Path, rng: np.random.Generator) -> None:
    base = rng.normal(size=(100, 4)).astype(np.float32)
    queries = rng.normal(size=(10, 4)).astype(np.float32)
    first = ground_truth(base, queries, 3, "l2", cache_dir=tmp_path)
    cache_path(tmp_path, first.key).write_bytes(b"not an npz")
    again = ground_truth(base, queries, 3, "l2", cache_dir=tmp_path)
    assert not again.cached
    np.testing.assert_array_equal(again.ids, first.ids)
    assert ground_truth(base, queries, 3, "l2", cache_dir=tmp_path).cached
