"""The scikit-learn estimator: clone, cross_val_score, labels, persistence, templates, tuning."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import cross_val_score

from knnserve.errors import InvalidInputError
from knnserve.linear.estimator import LinearClassifier, tune_linear_classifier
from knnserve.linear.search import SearchSpace


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    data = load_digits()
    # Shuffled once (the file is ordered by writer), kept as 8x8 images with values 0..16 to exercise
    # the (N, ...) input path.
    order = np.random.default_rng(0).permutation(len(data.target))
    return data.images[order].astype(np.uint8), data.target[order]


FAST = dict(epochs=8, batch_size=32, scale=16.0, seed=0)


@pytest.mark.parametrize("loss", ["softmax", "svm"])
def test_fit_predict_score(digits: tuple[np.ndarray, np.ndarray], loss: str) -> None:
    x, y = digits
    est = LinearClassifier(loss=loss, **FAST).fit(x[:1200], y[:1200])
    assert est.score(x[1200:], y[1200:]) > 0.9
    np.testing.assert_array_equal(est.classes_, np.arange(10))
    assert est.coef_.shape == (10, 64) and est.intercept_.shape == (10,)
    assert est.n_features_in_ == 64
    proba = est.predict_proba(x[1200:])
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(est.classes_[proba.argmax(axis=1)], est.predict(x[1200:]))
    np.testing.assert_array_equal(est.decision_function(x[1200:]).argmax(axis=1), proba.argmax(axis=1))
    history = est.history_
    assert 1 <= len(history) <= 8 and all(h["val_accuracy"] is not None for h in history)
    assert est.model_.calibrated == (loss == "softmax")


def test_clone_and_cross_val_score(digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = digits
    flat = x.reshape(len(x), -1)
    est = LinearClassifier(loss="softmax", reg="elasticnet", reg_strength=1e-5, **FAST)
    copy = clone(est)
    assert copy.get_params() == est.get_params() and copy is not est
    scores = cross_val_score(est, flat[:900], y[:900], cv=3)
    assert scores.shape == (3,) and scores.min() > 0.85
    assert not hasattr(est, "model_")  # cross_val_score fits clones


def test_string_labels_and_given_validation_split(digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = digits
    names = np.array([f"digit-{d}" for d in range(10)])
    labels = names[y]
    est = LinearClassifier(**FAST).fit(x[:1000], labels[:1000], X_val=x[1000:1300], y_val=labels[1000:1300])
    assert set(est.predict(x[1300:])) <= set(names)
    assert est.score(x[1300:], labels[1300:]) > 0.9
    assert est.result_.best_val_accuracy == pytest.approx(est.score(x[1000:1300], labels[1000:1300]))
    with pytest.raises(InvalidInputError, match="y_val"):
        LinearClassifier(**FAST).fit(x[:100], labels[:100], X_val=x[100:110], y_val=np.array(["cat"] * 10))


def test_no_validation_keeps_last_epoch(digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = digits
    est = LinearClassifier(val_fraction=0.0, **FAST).fit(x[:500], y[:500])
    assert len(est.history_) == 8 and est.best_epoch_ == 8
    assert est.history_[0]["val_accuracy"] is None


def test_persistence_round_trip(tmp_path: Path, digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = digits
    labels = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])[y]
    est = LinearClassifier(loss="svm", pca_dim=20, standardize=True, **FAST).fit(x[:800], labels[:800])
    np.savez(tmp_path / "head.npz", **est.to_arrays())
    (tmp_path / "head.json").write_text(json.dumps(est.metadata()))
    with np.load(tmp_path / "head.npz", allow_pickle=False) as arrays:
        loaded = LinearClassifier.from_arrays(arrays, json.loads((tmp_path / "head.json").read_text()))
    np.testing.assert_array_equal(loaded.predict(x[800:]), est.predict(x[800:]))
    np.testing.assert_array_equal(loaded.decision_function(x[800:]), est.decision_function(x[800:]))
    assert loaded.get_params() == est.get_params()
    assert loaded.history_ == est.history_


def test_templates_reproduce_scores_in_pixel_space(digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = digits
    est = LinearClassifier(standardize=True, **FAST).fit(x[:600], y[:600])
    templates = est.templates()
    assert templates.shape == (10, 8, 8)
    scores = est.decision_function(x[600:700]).astype(np.float64)
    pixel_scores = x[600:700].reshape(100, -1).astype(np.float64) @ templates.reshape(10, -1).T.astype(np.float64)
    # Scores and pixel-space scores differ only by a per-class constant (the folded-in bias).
    offset = scores - pixel_scores
    np.testing.assert_allclose(offset, np.broadcast_to(offset[:1], offset.shape), atol=1e-3)
    with pytest.raises(InvalidInputError, match="l2_normalize"):
        LinearClassifier(l2_normalize=True, **FAST).fit(x[:300], y[:300]).templates()


def test_tune_returns_winner_and_clone_fit_reproduces_it(digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = digits
    space = SearchSpace((0.02, 0.2), (1e-5, 1e-2))
    est, result = tune_linear_classifier(x[:900], y[:900], space, **FAST)
    assert len(result.table) == 4
    assert est.learning_rate == result.best_params["learning_rate"]
    assert est.reg_strength == result.best_params["reg_strength"]
    refit = clone(est).fit(x[:900], y[:900])
    np.testing.assert_array_equal(refit.coef_, est.coef_)
    assert est.score(x[900:], y[900:]) > 0.9


def test_tune_with_refit_trains_the_winner_on_every_row(digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = digits
    space = SearchSpace((0.02, 0.2), (1e-5, 1e-2))
    searched, result = tune_linear_classifier(x[:900], y[:900], space, **FAST)
    est, same = tune_linear_classifier(x[:900], y[:900], space, refit=True, **FAST)
    assert same.best_params == result.best_params  # the same search chose the same values
    assert est.val_fraction == 0.0 and est.patience is None and est.learning_rate == result.best_params["learning_rate"]
    assert est.result_.epochs_run == FAST["epochs"] and est.result_.history[0].val_accuracy is None  # no rows held out
    assert not np.array_equal(est.coef_, searched.coef_)  # trained again, on 900 rows instead of 810
    np.testing.assert_array_equal(clone(est).fit(x[:900], y[:900]).coef_, est.coef_)
    assert est.score(x[900:], y[900:]) > 0.9
    with pytest.raises(InvalidInputError, match="refit"):
        tune_linear_classifier(x[:800], y[:800], space, X_val=x[800:900], y_val=y[800:900], refit=True, **FAST)


def test_errors(digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = digits
    with pytest.raises(NotFittedError):
        LinearClassifier().predict(x[:3])
    with pytest.raises(InvalidInputError, match="classes"):
        LinearClassifier(**FAST).fit(x[:10], np.zeros(10, dtype=int))
    with pytest.raises(InvalidInputError, match="loss"):
        LinearClassifier(loss="hinge").fit(x[:50], y[:50])
    with pytest.raises(InvalidInputError, match="X/y"):
        LinearClassifier().fit(x[:50], y[:40])
    with pytest.raises(InvalidInputError, match="both or neither"):
        LinearClassifier().fit(x[:50], y[:50], X_val=x[50:60])
