"""k-NN cross-validation: scikit-learn as the oracle, one exact search per fold, the plot is drawn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from knnserve.errors import InvalidInputError
from knnserve.model import KNNModel
from knnserve.selection import cross_validate_k
from knnserve.selection.plot import plot_cv_curve


@pytest.fixture
def data(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    centres = rng.normal(scale=1.5, size=(3, 10))
    y = rng.integers(0, 3, 300)
    return (centres[y] + rng.normal(size=(300, 10))).astype(np.float32), y


def test_fold_means_equal_scikit_learn_cross_val_score(data) -> None:
    x, y = data
    result = cross_validate_k(x, y, ks=(1, 4, 9), folds=5, tie_break="lowest", seed=3)
    splitter = StratifiedKFold(n_splits=5, shuffle=True, random_state=3)
    for candidate in result.candidates:
        oracle = KNeighborsClassifier(candidate.k, weights=candidate.weights, algorithm="brute")
        expected = cross_val_score(oracle, x, y, cv=splitter)
        np.testing.assert_allclose(candidate.fold_accuracies, expected)
    assert result.best.mean == max(c.mean for c in result.candidates)
    assert len(result.candidates) == 6


def test_one_search_per_fold_at_the_largest_k(data, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    original = KNNModel.search

    def counting(self, prepared, query):
        calls.append(query.k)
        return original(self, prepared, query)

    monkeypatch.setattr(KNNModel, "search", counting)
    cross_validate_k(*data, ks=(1, 3, 5, 7), folds=4)
    assert calls == [7, 7, 7, 7]


def test_bad_arguments_name_the_field(data) -> None:
    with pytest.raises(InvalidInputError, match="folds"):
        cross_validate_k(*data, folds=1)
    with pytest.raises(InvalidInputError, match="ks"):
        cross_validate_k(*data, ks=(1, 1000))


def test_plot_is_a_png(data, tmp_path: Path) -> None:
    result = cross_validate_k(*data, ks=(1, 3), folds=3)
    path = plot_cv_curve(result, tmp_path / "cv.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.as_dict()["best"]["k"] in (1, 3)


def test_preprocessing_candidates_cost_one_search_each_per_fold(data, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    original = KNNModel.search

    def counting(self, prepared, query):
        calls.append(query.k)
        return original(self, prepared, query)

    monkeypatch.setattr(KNNModel, "search", counting)
    result = cross_validate_k(*data, ks=(1, 5), folds=3, preprocess=("raw", "pca:4+cosine"))
    assert calls == [5] * 6
    assert {c.preprocess for c in result.candidates} == {"raw", "pca:4+cosine"}
    assert len(result.candidates) == 2 * 2 * 2
