"""Bundles with k-NN preprocessing (PCA, cosine) and a linear head: round trips and the CLI around them."""

from __future__ import annotations

import csv
from pathlib import Path

import faiss
import numpy as np
import pytest

from knnserve.cli import main
from knnserve.errors import InvalidInputError
from knnserve.features.knn_spec import knn_preprocess_name, parse_knn_preprocess
from knnserve.linear import LinearClassifier
from knnserve.model import KNNModel
from knnserve_client.wire.query import KnnQuery


@pytest.mark.parametrize("spec", ["raw", "cosine", "pca:8", "pca:8+cosine"])
def test_preprocess_specs_round_trip(spec: str) -> None:
    assert knn_preprocess_name(parse_knn_preprocess(spec)) == spec


@pytest.mark.parametrize("spec", ["", "pca", "pca:0", "pca:8+", "+cosine", "cosine+pca:8", "zca:3"])
def test_bad_preprocess_specs_are_refused(spec: str) -> None:
    with pytest.raises(InvalidInputError, match="preprocess"):
        parse_knn_preprocess(spec)


def test_cosine_preprocessing_ranks_by_cosine_similarity(blobs) -> None:
    x_train, y_train, x_test, _ = blobs
    model = KNNModel.fit(x_train, y_train, preprocess=parse_knn_preprocess("cosine"))
    _, ids = model.search(model.prepare(x_test), model.resolve(KnnQuery(k=5)))
    unit = x_train / np.linalg.norm(x_train, axis=1, keepdims=True)
    queries = x_test / np.linalg.norm(x_test, axis=1, keepdims=True)
    reference = faiss.IndexFlatIP(unit.shape[1])
    reference.add(unit)
    _, expected = reference.search(queries, 5)
    np.testing.assert_array_equal(ids, expected)


def test_bundle_with_pca_and_linear_head_round_trips(tmp_path: Path, pixels) -> None:
    x, y = pixels
    model = KNNModel.fit(x[:600], y[:600], class_names=("a", "b", "c"), preprocess=parse_knn_preprocess("pca:6+cosine"))
    assert model.index.d == 6 and model.dim == 36
    head = LinearClassifier(epochs=3, seed=1).fit(x[:600], y[:600])
    model = model.with_linear(head)
    model.save(tmp_path / "b", name="b")
    loaded = KNNModel.load(tmp_path / "b")
    assert loaded.heads == ("knn", "linear") and loaded.manifest is not None
    assert loaded.manifest.preprocessing["config"]["pca_dim"] == 6
    rows = loaded.prepare(x[600:])
    np.testing.assert_array_equal(loaded.classify_prepared(rows, loaded.resolve()).ids, model.classify(x[600:]).ids)
    predictions, probabilities = loaded.predict_linear(rows)
    np.testing.assert_array_equal(predictions, head.predict(x[600:]))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_linear_head_must_match_the_input(pixels) -> None:
    x, y = pixels
    model = KNNModel.fit(x, y)
    with pytest.raises(InvalidInputError, match="linear"):
        model.with_linear(LinearClassifier(epochs=1).fit(x[:, :3, :3], y))
    with pytest.raises(InvalidInputError, match="heads"):
        model.predict_linear(model.prepare(x[:2]))


def test_predict_both_heads_and_templates(tmp_path: Path, pixels, capsys: pytest.CaptureFixture[str]) -> None:
    x, y = pixels
    data = tmp_path / "data"
    data.mkdir()
    np.savez(data / "d.npz", x_train=x[:600], y_train=y[:600], x_test=x[600:], y_test=y[600:])
    bundle = tmp_path / "m"
    assert main(["train", "--data-dir", str(data), "--k", "3", "--preprocess", "raw", "--linear", "svm", "--out", str(bundle), "--no-progress"]) == 0
    assert "linear_test_accuracy" in capsys.readouterr().out
    np.save(tmp_path / "q.npy", x[600:])
    out = tmp_path / "p.csv"
    assert main(["predict", "--model", str(bundle), "--input", str(tmp_path / "q.npy"), "--method", "both", "--out", str(out), "--no-progress"]) == 0
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["row", "knn_label", "knn_class_name", "knn_probability", "linear_label", "linear_class_name", "linear_probability"]
    model = KNNModel.load(bundle)
    linear_expected, _ = model.predict_linear(model.prepare(x[600:]))
    assert [int(r["linear_label"]) for r in rows] == linear_expected.tolist()
    png = tmp_path / "t.png"
    assert main(["templates", "--model", str(bundle), "--out", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert main(["train", "--data-dir", str(data), "--k", "3", "--preprocess", "raw", "--linear", "none", "--out", str(tmp_path / "knn-only"), "--no-progress"]) == 0
    assert main(["templates", "--model", str(tmp_path / "knn-only"), "--out", str(png)]) == 2
    assert "linear head" in capsys.readouterr().err
