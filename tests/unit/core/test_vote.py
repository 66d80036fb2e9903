"""Voting rules, checked by hand-worked rows and against scikit-learn as an oracle."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from knnserve.errors import InvalidInputError
from knnserve.estimator import KNNClassifier
from knnserve.vote import vote


@pytest.fixture
def noisy(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels unrelated to the vectors: votes are close, so ties between classes are common."""
    return (
        rng.normal(size=(400, 12)).astype(np.float32),
        rng.integers(0, 3, 400),
        rng.normal(size=(200, 12)).astype(np.float32),
    )


def test_majority_and_probabilities() -> None:
    labels = np.array([[2, 1, 2, 0, 2]])
    result = vote(labels, np.arange(1.0, 6.0)[None, :], 3)
    assert result.predictions.tolist() == [2]
    np.testing.assert_allclose(result.probabilities, [[0.2, 0.2, 0.6]])


def test_tie_rules_differ_on_a_tie() -> None:
    # classes 2 and 1 tie 2:2; class 2 owns the nearest neighbour, class 1 is the lower index.
    labels = np.array([[2, 1, 1, 2]])
    distances = np.array([[0.5, 1.0, 2.0, 3.0]])
    assert vote(labels, distances, 3, tie_break="nearest").predictions.tolist() == [2]
    assert vote(labels, distances, 3, tie_break="lowest").predictions.tolist() == [1]


def test_nearest_tie_rule_ignores_untied_classes() -> None:
    # class 0 is nearest but has one vote; 1 and 2 tie with two votes each, 2 is nearer.
    labels = np.array([[0, 2, 1, 1, 2]])
    assert vote(labels, np.arange(5.0)[None, :] + 1, 3, tie_break="nearest").predictions.tolist() == [2]


def test_missing_neighbors_are_masked() -> None:
    labels = np.array([[1, -1, -1], [-1, -1, -1]])
    result = vote(labels, np.ones((2, 3)), 2)
    assert result.predictions.tolist() == [1, -1]
    np.testing.assert_allclose(result.probabilities, [[0.0, 1.0], [0.0, 0.0]])


def test_distance_weighting_and_exact_matches() -> None:
    labels = np.array([[0, 1, 1], [0, 1, 1]])
    distances = np.array([[1.0, 3.0, 3.0], [0.0, 0.5, 0.5]])
    result = vote(labels, distances, 2, weights="distance")
    # row 0: class 0 weight 1, class 1 weight 2/3; row 1: the zero-distance neighbour takes all.
    assert result.predictions.tolist() == [0, 0]
    np.testing.assert_allclose(result.probabilities[0], [0.6, 0.4], rtol=1e-6)
    np.testing.assert_allclose(result.probabilities[1], [1.0, 0.0])


@pytest.mark.parametrize("field,kwargs", [("weights", {"weights": "cubic"}), ("tie_break", {"tie_break": "random"})])
def test_unknown_options_name_the_field(field: str, kwargs: dict[str, str]) -> None:
    with pytest.raises(InvalidInputError, match=field):
        vote(np.zeros((1, 1), dtype=np.int64), np.zeros((1, 1)), 1, **kwargs)


@pytest.mark.parametrize("weights", ["uniform", "distance"])
@pytest.mark.parametrize("metric,sk_metric", [("l2", "euclidean"), ("l1", "manhattan")])
@pytest.mark.parametrize("k", [1, 4, 7])
def test_predictions_equal_scikit_learn(noisy, weights: str, metric: str, sk_metric: str, k: int) -> None:
    x_train, y_train, x_test = noisy
    ours = KNNClassifier(k, metric=metric, weights=weights, tie_break="lowest").fit(x_train, y_train)
    oracle = KNeighborsClassifier(k, weights=weights, algorithm="brute", metric=sk_metric).fit(x_train, y_train)
    np.testing.assert_array_equal(ours.predict(x_test), oracle.predict(x_test))
    np.testing.assert_allclose(ours.predict_proba(x_test), oracle.predict_proba(x_test), atol=1e-5)


def test_ties_really_happen_in_the_oracle_test(noisy) -> None:
    x_train, y_train, x_test = noisy
    clf = KNNClassifier(4, tie_break="lowest").fit(x_train, y_train)
    proba = clf.predict_proba(x_test)
    top_two = np.sort(proba, axis=1)[:, -2:]
    assert (top_two[:, 0] == top_two[:, 1]).any(), "the scikit-learn comparison should exercise ties"
