"""The trained head as an artifact: inference outputs and .npz + JSON persistence without pickle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from knnserve.errors import BundleError, InvalidInputError
from knnserve.linear.model import LinearModel


def _model(loss: str = "softmax") -> LinearModel:
    rng = np.random.default_rng(0)
    return LinearModel(
        weights=rng.standard_normal((4, 6)).astype(np.float32),
        bias=rng.standard_normal(4).astype(np.float32),
        loss=loss,
    )


@pytest.mark.parametrize("loss", ["softmax", "svm"])
def test_outputs(loss: str) -> None:
    model = _model(loss)
    x = np.random.default_rng(1).standard_normal((9, 6))
    scores = model.decision_function(x)
    np.testing.assert_allclose(scores, x @ model.weights.T.astype(np.float64) + model.bias, rtol=1e-5, atol=1e-5)
    assert scores.dtype == np.float32
    probs = model.predict_proba(x)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_array_equal(probs.argmax(axis=1), model.predict(x))
    assert model.predict(x).dtype == np.int64
    assert model.calibrated == (loss == "softmax")


def test_npz_and_json_round_trip(tmp_path: Path) -> None:
    model = _model("svm")
    np.savez(tmp_path / "linear.npz", **model.to_arrays())
    (tmp_path / "linear.json").write_text(json.dumps(model.metadata()))
    with np.load(tmp_path / "linear.npz", allow_pickle=False) as arrays:
        loaded = LinearModel.from_arrays(arrays, json.loads((tmp_path / "linear.json").read_text()))
    np.testing.assert_array_equal(loaded.weights, model.weights)
    np.testing.assert_array_equal(loaded.bias, model.bias)
    assert (loaded.loss, loaded.delta) == ("svm", 1.0)


def test_rejects_wrong_shapes_and_schema() -> None:
    model = _model()
    with pytest.raises(InvalidInputError, match="shape"):
        model.predict(np.zeros((2, 5)))
    with pytest.raises(InvalidInputError, match="finite"):
        model.predict(np.full((2, 6), np.inf))
    with pytest.raises(BundleError, match="schema"):
        LinearModel.from_arrays(model.to_arrays(), {**model.metadata(), "schema": 99})
    with pytest.raises(BundleError, match="shape"):
        LinearModel.from_arrays(model.to_arrays(), {**model.metadata(), "n_features": 7})
    with pytest.raises(InvalidInputError, match="loss"):
        LinearModel(model.weights, model.bias, loss="logistic")
