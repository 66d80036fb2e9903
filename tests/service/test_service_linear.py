"""A bundle with a linear head beside the index: both heads over the wire, each on request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from knnserve.linear import LinearClassifier
from knnserve.model import KNNModel
from knnserve.service.config import ServeConfig
from knnserve.answers import top_classes
from knnserve.service.server import KnnServer
from knnserve_client import Client, InvalidArgumentError
from service_bundles import blob_data, save_model


@pytest.fixture(scope="module")
def linear_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, KNNModel, np.ndarray]]:
    root = tmp_path_factory.mktemp("linear-models")
    data = blob_data(11)
    head = LinearClassifier(epochs=15, seed=0).fit(data.x_train, data.y_train)
    both = KNNModel.fit(data.x_train, data.y_train, class_names=("a", "b", "c", "d")).with_linear(head)
    both.save(root / "both" / "1", name="both")
    save_model(root, "knnonly", 1, blob_data(12))
    server = KnnServer(ServeConfig(models_dir=root, port=0))
    port = server.start()
    server.load_models()
    yield f"127.0.0.1:{port}", KNNModel.load(root / "both" / "1"), data.x_query
    server.stop(0)


def test_both_heads_by_default_and_each_on_request(linear_server) -> None:
    target, model, x = linear_server
    expected_predictions, expected_probabilities = model.predict_linear(model.prepare(x))
    with Client(target, timeout=10) as client:
        assert client.model("both").heads == ("knn", "linear")
        assert client.model("knnonly").heads == ("knn",)
        both = client.classify("both", x)
        np.testing.assert_array_equal(both.knn.predictions, model.classify(x).predictions)
        np.testing.assert_array_equal(both.linear.predictions, expected_predictions)
        classes, scores = top_classes(expected_probabilities, 4)
        np.testing.assert_array_equal(both.linear.top_classes, classes)
        np.testing.assert_allclose(both.linear.top_scores, scores, rtol=1e-5)
        linear_only = client.classify("both", x[:5], heads=["linear"], top_n=1)
        assert linear_only.knn is None and linear_only.params is None
        np.testing.assert_array_equal(linear_only.predictions, expected_predictions[:5])
        with pytest.raises(InvalidArgumentError, match="heads: expected a subset of knn"):
            client.classify("knnonly", x[:2], heads=["linear"])
        with pytest.raises(InvalidArgumentError, match="return_neighbors: expected false unless the k-NN head runs"):
            client.classify("both", x[:2], heads=["linear"], return_neighbors=True)


def test_classify_command_writes_the_linear_head(linear_server, tmp_path: Path) -> None:
    from knnserve.cli import main

    target, model, x = linear_server
    np.save(tmp_path / "x.npy", x)
    assert main(["classify", "--server", target, "--model", "both", "--input", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "p.csv"), "--method", "linear"]) == 0
    labels = [int(line.split(",")[1]) for line in (tmp_path / "p.csv").read_text().splitlines()[1:]]
    assert labels == model.predict_linear(model.prepare(x))[0].tolist()
    assert main(["classify", "--server", target, "--model", "both", "--input", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "both.csv"), "--method", "both"]) == 0
    header = (tmp_path / "both.csv").read_text().splitlines()[0]
    assert header == "row,knn_label,knn_class_name,knn_probability,linear_label,linear_class_name,linear_probability"
