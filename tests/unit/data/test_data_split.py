"""train_val_split: stratified, seeded, disjoint and complete."""

from __future__ import annotations

import numpy as np
import pytest

from knnserve.data import train_val_split
from knnserve.errors import InvalidInputError


def _toy(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.repeat(np.arange(4), [50, 30, 100, 20]))
    # Each row carries its own index so the parts can be traced back.
    x = np.stack([np.arange(y.size), np.arange(y.size) * 2], axis=1)
    return x, y


def test_disjoint_complete_and_aligned() -> None:
    x, y = _toy()
    x_tr, y_tr, x_val, y_val = train_val_split(x, y, val_fraction=0.2, seed=3)

    ids_tr, ids_val = x_tr[:, 0], x_val[:, 0]
    assert set(ids_tr).isdisjoint(ids_val)
    assert sorted([*ids_tr, *ids_val]) == list(range(y.size))
    np.testing.assert_array_equal(y_tr, y[ids_tr])
    np.testing.assert_array_equal(y_val, y[ids_val])
    assert len(ids_val) == 40
    assert np.all(np.diff(ids_tr) > 0)  # original order kept


def test_stratified() -> None:
    x, y = _toy()
    _, _, _, y_val = train_val_split(x, y, val_fraction=0.2, seed=0)
    expected = np.bincount(y) * 0.2
    assert np.all(np.abs(np.bincount(y_val, minlength=4) - expected) <= 1)


def test_seeded() -> None:
    x, y = _toy()
    first = train_val_split(x, y, seed=7)
    again = train_val_split(x, y, seed=7)
    other = train_val_split(x, y, seed=8)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[2], other[2])


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_fraction_must_be_inside_zero_one(fraction: float) -> None:
    x, y = _toy()
    with pytest.raises(InvalidInputError, match="val_fraction"):
        train_val_split(x, y, val_fraction=fraction)


def test_lengths_must_agree() -> None:
    x, y = _toy()
    with pytest.raises(InvalidInputError, match="y"):
        train_val_split(x, y[:-1])


def test_singleton_class_is_a_clear_error() -> None:
    x = np.zeros((5, 2))
    y = np.array([0, 0, 1, 1, 2])
    with pytest.raises(InvalidInputError, match="every class"):
        train_val_split(x, y, val_fraction=0.4)
