"""The one validation carve-out (linear head, CV folds, CNN training): seeded, stratified, disjoint, with a plain
fallback for tiny data."""

from __future__ import annotations

import numpy as np
import pytest

from knnserve.errors import InvalidInputError
from knnserve.data.split import validation_split


def test_stratified_disjoint_and_seeded() -> None:
    y = np.repeat(np.arange(4), [100, 50, 30, 20])
    train, val = validation_split(y, 0.1, seed=3)
    assert len(val) == 20 and len(train) == 180
    assert np.intersect1d(train, val).size == 0 and np.union1d(train, val).size == 200
    np.testing.assert_array_equal(np.bincount(y[val]), [10, 5, 3, 2])
    again_train, again_val = validation_split(y, 0.1, seed=3)
    np.testing.assert_array_equal(val, again_val)
    assert not np.array_equal(val, validation_split(y, 0.1, seed=4)[1])


def test_zero_fraction_and_tiny_data() -> None:
    y = np.array([0, 0, 1, 1, 2])
    train, val = validation_split(y, 0.0)
    assert val.size == 0 and train.size == 5
    # Class 2 has a single sample, so stratification is impossible: a plain split is used instead.
    train, val = validation_split(y, 0.4, seed=0)
    assert val.size == 2 and train.size == 3
    with pytest.raises(InvalidInputError, match="val_fraction"):
        validation_split(y, 1.0)
