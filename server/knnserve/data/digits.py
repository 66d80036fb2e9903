"""scikit-learn's 8x8 digits as a small dataset with a fixed, seeded, stratified test split."""

from __future__ import annotations

import numpy as np

from knnserve.data.arrays import Splits

DIGITS_TEST_SIZE = 360  # of 1,797 samples: a 1,437 / 360 split, about 80/20
DIGITS_SEED = 0


def read_digits() -> Splits:
    """Load ``sklearn.datasets.load_digits`` as uint8 pixels 0..255 split 1,437 train / 360 test.

    The 0..16 ink counts are scaled by 255/16 and rounded so that the images have
    the same dtype and range as every other dataset's pixels.
    """
    # Imported here: scikit-learn takes a second to import and only this dataset needs it.
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    train_idx, test_idx = train_test_split(
        np.arange(labels.shape[0]),
        test_size=DIGITS_TEST_SIZE,
        random_state=DIGITS_SEED,
        stratify=labels,
    )
    # Sorted indices keep the original sample order inside each split.
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    return Splits(
        x_train=images[train_idx],
        y_train=labels[train_idx],
        x_test=images[test_idx],
        y_test=labels[test_idx],
        class_names=tuple(str(i) for i in range(10)),
    )
