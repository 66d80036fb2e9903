"""Recall (ann-benchmarks rule), id overlap, accuracy and the Pareto front, on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from knnserve.evaluate import accuracy, exact_distances, id_overlap, pareto_front, recall_at_k, recall_per_query

# Base points on a line: distances from a query at 0 are exactly the coordinates.
LINE = np.array([[0.0], [1.0], [2.0], [2.0], [3.0], [5.0]])
QUERY = np.array([[0.0]])


def test_exact_distances_by_hand() -> None:
    base = np.array([[0, 0], [3, 4], [1, 1]], dtype=np.uint8)
    query = np.array([[0, 0]], dtype=np.uint8)
    ids = np.array([[1, 2, -1]])
    l2 = exact_distances(base, query, ids, "l2")
    l1 = exact_distances(base, query, ids, "l1")
    assert l2[0, 0] == 5.0 and l2[0, 1] == pytest.approx(np.sqrt(2)) and np.isinf(l2[0, 2])
    assert l1[0, 0] == 7.0 and l1[0, 1] == 2.0 and np.isinf(l1[0, 2])


def test_uint8_distances_do_not_wrap_around() -> None:
    base = np.array([[0], [255]], dtype=np.uint8)
    query = np.array([[255]], dtype=np.uint8)
    assert exact_distances(base, query, np.array([[0, 1]]), "l2")[0].tolist() == [255.0, 0.0]


def test_a_tied_neighbor_counts_although_exact_search_returned_the_other() -> None:
    # k=3: true neighbours are ids 0, 1 and one of the two points at distance 2 (ids 2 and 3).
    true_kth = np.array([2.0])
    returned = np.array([[0, 1, 3]])  # the tie exact search did not pick
    dist = exact_distances(LINE, QUERY, returned, "l2")
    assert recall_at_k(returned, dist, true_kth, 3) == 1.0
    # id overlap gives no credit for the tie: 2 of 3 ids match the exact list [0, 1, 2]
    assert id_overlap(returned, np.array([[0, 1, 2]]), 3) == pytest.approx(2 / 3)


def test_farther_neighbors_missing_ids_and_duplicates() -> None:
    true_kth = np.array([2.0])
    cases = {
        (0, 1, 4): 2 / 3,  # id 4 is at 3 > 2 + eps
        (0, -1, 2): 2 / 3,  # -1 never counts
        (-1, -1, -1): 0.0,
        (0, 0, 1): 2 / 3,  # a repeated id counts once
        (5, 4, 2): 1 / 3,
    }
    for ids, expected in cases.items():
        returned = np.array([ids])
        dist = exact_distances(LINE, QUERY, returned, "l2")
        assert recall_at_k(returned, dist, true_kth, 3) == pytest.approx(expected), ids


def test_epsilon_is_an_absolute_slack_on_the_distance_scale() -> None:
    returned = np.array([[0, 1, 4]])  # id 4 at distance 3, true 3rd distance 2
    dist = exact_distances(LINE, QUERY, returned, "l2")
    assert recall_at_k(returned, dist, np.array([2.0]), 3, epsilon=0.999) == pytest.approx(2 / 3)
    assert recall_at_k(returned, dist, np.array([2.0]), 3, epsilon=1.0) == 1.0


def test_recall_per_query_scores_only_the_first_k_columns() -> None:
    returned = np.array([[0, 1, 2, 5], [5, 4, 0, 1]])
    queries = np.zeros((2, 1))
    dist = exact_distances(LINE, queries, returned, "l2")
    per_query = recall_per_query(returned, dist, np.array([1.0, 1.0]), 2)
    assert per_query.tolist() == [1.0, 0.0]


def test_accuracy_counts_missing_predictions_as_wrong() -> None:
    assert accuracy(np.array([0, 1, -1, 2]), np.array([0, 1, 2, 1])) == 0.5
    with pytest.raises(ValueError):
        accuracy(np.array([0, 1]), np.array([0]))


def test_pareto_front_by_hand() -> None:
    qps = np.array([100.0, 50.0, 80.0, 10.0, 100.0])
    recall = np.array([0.5, 0.9, 0.4, 1.0, 0.5])
    # (80, 0.4) is beaten by (100, 0.5); the two (100, 0.5) points tie, neither beats the other.
    assert pareto_front(qps, recall).tolist() == [True, True, False, True, True]
