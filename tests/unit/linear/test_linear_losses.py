"""Loss values against the lecture's worked examples and hand-derived cases; numerical stability."""

from __future__ import annotations

import math

import numpy as np
import pytest

from knnserve.errors import InvalidInputError
from knnserve.linear.losses import data_loss, log_softmax, softmax, softmax_loss, svm_loss

# The lecture's 3-class example: columns are three images (a cat, a car, a frog), rows the class
# scores for cat, car, frog. Transposed here to one row per image.
LECTURE_SCORES = np.array([[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]])
LECTURE_LABELS = np.array([0, 1, 2])


def test_svm_loss_matches_lecture_example() -> None:
    per_example = [svm_loss(LECTURE_SCORES[i : i + 1], LECTURE_LABELS[i : i + 1])[0] for i in range(3)]
    np.testing.assert_allclose(per_example, [2.9, 0.0, 12.9], atol=1e-12)
    mean, _ = svm_loss(LECTURE_SCORES, LECTURE_LABELS)
    assert mean == pytest.approx((2.9 + 0 + 12.9) / 3)
    assert round(mean, 2) == 5.27  # the lecture's rounded figure


def test_softmax_loss_matches_lecture_example() -> None:
    loss, _ = softmax_loss(LECTURE_SCORES[:1], LECTURE_LABELS[:1])
    expected = -math.log(math.exp(3.2) / (math.exp(3.2) + math.exp(5.1) + math.exp(-1.7)))
    assert loss == pytest.approx(expected, rel=1e-12)
    assert round(loss, 2) == 2.04  # the lecture's "-log(0.13) = 2.04"
    np.testing.assert_allclose(softmax(LECTURE_SCORES[:1])[0], [0.13, 0.87, 0.00], atol=0.005)


def test_softmax_loss_of_equal_scores_is_log_c() -> None:
    scores = np.zeros((4, 10))
    loss, grad = softmax_loss(scores, np.array([0, 3, 5, 9]))
    assert loss == pytest.approx(math.log(10))
    np.testing.assert_allclose(grad.sum(axis=1), 0, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_is_stable_for_huge_scores(dtype: type) -> None:
    scores = np.array([[1e4, 0.0, -1e4], [3e38, 3e38, 0.0], [-1e4, -1e4 + 1, -1e4 + 2]], dtype=dtype)
    probs = softmax(scores)
    log_p = log_softmax(scores)
    assert np.isfinite(probs).all() and np.isfinite(log_p).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(probs[0], [1, 0, 0], atol=1e-7)
    np.testing.assert_allclose(probs[1], [0.5, 0.5, 0], atol=1e-7)
    # Shift invariance: the last row is [0, 1, 2] shifted by -1e4.
    np.testing.assert_allclose(probs[2], softmax(np.array([[0.0, 1.0, 2.0]]))[0], rtol=1e-3)
    loss, grad = softmax_loss(scores, np.array([2, 0, 2]))
    assert np.isfinite(loss) and np.isfinite(grad).all()
    last = -math.log(softmax(np.array([[0.0, 1.0, 2.0]]))[0, 2])
    assert loss == pytest.approx((2e4 + math.log(2) + last) / 3, rel=1e-3)


def test_svm_zero_when_margin_satisfied_and_linear_inside() -> None:
    y = np.array([0])
    # Correct class ahead by more than delta: no loss, no gradient.
    loss, grad = svm_loss(np.array([[5.0, 3.9, 1.0]]), y)
    assert loss == 0.0 and not grad.any()
    # Exactly at the margin: still zero (max(0, 0)).
    loss, grad = svm_loss(np.array([[5.0, 4.0, 1.0]]), y)
    assert loss == 0.0 and not grad.any()
    # Inside the margin by 0.25: loss 0.25, gradient pushes the rival up and the true class down.
    loss, grad = svm_loss(np.array([[5.0, 4.25, 1.0]]), y)
    assert loss == pytest.approx(0.25)
    np.testing.assert_array_equal(grad, [[-1.0, 1.0, 0.0]])
    # A wider margin delta makes the same scores violate more.
    loss, _ = svm_loss(np.array([[5.0, 4.25, 1.0]]), y, delta=5.0)
    assert loss == pytest.approx(4.25 + 1.0)


def test_svm_loss_is_scale_sensitive_only_through_the_margin() -> None:
    # The lecture: doubling W keeps a zero loss at zero.
    scores = LECTURE_SCORES[1:2]
    assert svm_loss(scores, np.array([1]))[0] == 0.0
    assert svm_loss(2 * scores, np.array([1]))[0] == 0.0


def test_data_loss_rejects_unknown_loss() -> None:
    with pytest.raises(InvalidInputError, match="loss"):
        data_loss(LECTURE_SCORES, LECTURE_LABELS, "hinge2")
