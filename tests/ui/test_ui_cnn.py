"""The page over a CNN bundle (an ONNX extractor, HNSW, a softmax head on the embedding): the card and ef_search."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from knnserve.ui.app import UiApp, UiConfig
from knnserve.ui.dataset_view import DatasetView
from knnserve.ui.web import UiHttpServer
from knnserve_client import Client
from ui_fixtures import call, start_grpc


@pytest.fixture(scope="module")
def cnn_page(cnn_bundle: Any) -> Iterator[tuple[str, str]]:
    server, target = start_grpc(cnn_bundle.root)
    app = UiApp(UiConfig(server=target, models_dir=cnn_bundle.root, timeout=20.0), dataset=DatasetView(cnn_bundle.dataset))
    http = UiHttpServer(app, port=0)
    http.start()
    yield f"http://127.0.0.1:{http.port}", target
    http.stop()
    server.stop(0)


def test_the_card_of_a_cnn_bundle(cnn_page: tuple[str, str]) -> None:
    page, _ = cnn_page
    status, card = call(page, "/api/card?model=shapes")
    assert status == 200
    assert card["features"]["input"] == "extractor" and card["features"]["embedding_dim"] > 0
    assert card["bundle"]["extractor"].startswith("cnn:")
    assert card["bundle"]["templates"] == [] and "embedding" in card["bundle"]["templates_note"]
    assert card["limits"]["max_ef_search"] is not None and card["limits"]["max_nprobe"] is None
    assert "cnn_test_accuracy" in card["bundle"]["accuracies"] and card["dataset_match"]["ok"]


def test_ef_search_reaches_the_server_and_neighbours_match_search(cnn_page: tuple[str, str], cnn_bundle: Any) -> None:
    page, target = cnn_page
    status, answer = call(page, "/api/inspect", {"model": "shapes", "source": "test", "row": 4, "k": 5, "ef_search": 40})
    assert status == 200 and answer["params"]["ef_search"] == 40
    row = cnn_bundle.dataset.x_test[4:5]
    with Client(target, timeout=10) as client:
        searched = client.search("shapes", row, k=5, ef_search=40)
    assert [n["id"] for n in answer["neighbors"]] == searched.ids[0].tolist()
    assert np.allclose([n["distance"] for n in answer["neighbors"]], searched.distances[0], rtol=1e-5)
    assert all(n["thumbnail"] for n in answer["neighbors"])
    assert answer["heads"]["linear"] is not None
