"""The inspection page on the real Fashion-MNIST in headless Chromium: a full-size exact index, its thumbnails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from knnserve.model import KNNModel
from knnserve.train import dataset_info
from knnserve.ui.app import UiApp, UiConfig
from knnserve.ui.dataset_view import DatasetView
from knnserve.ui.web import UiHttpServer
from knnserve_client import Client
from ui_browser import answer_for, css, neighbours, open_page, pick_test_row, select_model
from ui_fixtures import start_grpc

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def fashion_page(fashion_mnist: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """An exact index of all 60,000 training images (one byte a pixel), served, and the page over it."""
    models = tmp_path_factory.mktemp("fashion-models")
    model = KNNModel.fit(fashion_mnist.x_train, fashion_mnist.y_train, class_names=fashion_mnist.class_names,
                         index="flat", storage="uint8")
    model.save(models / "fashion" / "1", name="fashion", dataset=dataset_info(fashion_mnist))
    server, target = start_grpc(models)
    app = UiApp(UiConfig(server=target, models_dir=models, timeout=30.0), dataset=DatasetView(fashion_mnist))
    http = UiHttpServer(app, port=0)
    http.start()
    yield f"http://127.0.0.1:{http.port}", target
    http.stop()
    server.stop(0)


def test_fashion_mnist_neighbours_are_its_training_images(browser: Any, fashion_page: tuple[str, str], fashion_mnist: Any,
                                                          artifacts: Path) -> None:
    page, target = fashion_page
    open_page(browser, page)
    select_model(browser, "fashion")
    assert "matches" in css(browser, "#card-body")[0].text
    pick_test_row(browser, 12)
    row = fashion_mnist.x_test[12:13]
    with Client(target, timeout=30) as client:
        searched = client.search("fashion", row)
        expected = client.classify("fashion", row)
    shown = neighbours(browser)
    assert [n["id"] for n in shown] == searched.ids[0].tolist()
    assert np.allclose([n["distance"] for n in shown], searched.distances[0], rtol=1e-6)
    assert all(n["image"] for n in shown)
    assert [n["label"] for n in shown] == fashion_mnist.y_train[searched.ids[0]].tolist()
    assert int(css(browser, ".head-knn .prediction")[0].get_attribute("data-class")) == int(expected.knn.predictions[0])
    answer_for(browser, f"true class {fashion_mnist.class_names[int(fashion_mnist.y_test[12])]}")
    browser.save_screenshot(str(artifacts / "ui-fashion-mnist.png"))
