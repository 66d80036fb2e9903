"""Fixtures of the inspection page's tests: a tiny image dataset and its bundles, real gRPC servers, the page, headless Chromium."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from knnserve.data import load_dataset
from knnserve.train import KnnConfig, LinearConfig, save_trained, train_model
from knnserve.ui.app import UiApp, UiConfig
from knnserve.ui.web import UiHttpServer
from knnserve_client.wire.query import KnnQuery
from ui_fixtures import TOKEN, UiFactory, UiModels, start_grpc, tiny_images

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture(scope="session")
def ui_models(tmp_path_factory: pytest.TempPathFactory) -> UiModels:
    """tiny/1 (Flat, k by 3-fold CV, softmax head) and tiny-ivf/1 (IVF, no head) on the tiny dataset."""
    root = tmp_path_factory.mktemp("ui")
    data_file = root / "tiny.npz"
    np.savez(data_file, **tiny_images())
    dataset = load_dataset(data_dir=data_file)
    models = root / "models"
    flat = train_model(dataset, KnnConfig(index="flat", choose_k=True, cv_folds=3, cv_ks=(1, 3, 5, 7)),
                       LinearConfig(loss="softmax"))
    save_trained(flat, dataset, models / "tiny" / "1", name="tiny")
    ivf = train_model(dataset, KnnConfig(index="IVF4,Flat", defaults=KnnQuery(k=5, nprobe=2)), LinearConfig(loss="none"))
    save_trained(ivf, dataset, models / "tiny-ivf" / "1", name="tiny-ivf")
    return UiModels(data_file=data_file, dataset=dataset, models=models)


@pytest.fixture(scope="module")
def grpc_target(ui_models: UiModels) -> Iterator[str]:
    """A real knnserve server over the tiny models, no auth."""
    server, target = start_grpc(ui_models.models)
    yield target
    server.stop(0)


@pytest.fixture(scope="module")
def grpc_auth_target(ui_models: UiModels) -> Iterator[str]:
    """A real knnserve server over the tiny models that wants the bearer token ``TOKEN``."""
    server, target = start_grpc(ui_models.models, token=TOKEN)
    yield target
    server.stop(0)


@pytest.fixture(scope="module")
def start_ui(ui_models: UiModels) -> Iterator[UiFactory]:
    """Start inspection pages on 127.0.0.1:0 for a server; returns the page's base URL. Stopped at the module's end."""
    started: list[UiHttpServer] = []

    def start(target: str, **overrides: object) -> str:
        config = UiConfig(**{"server": target, "models_dir": ui_models.models, "data_dir": ui_models.data_file,
                             "timeout": 20.0, **overrides})  # type: ignore[arg-type]
        http = UiHttpServer(UiApp(config), host="127.0.0.1", port=0)
        http.start()
        started.append(http)
        return f"http://127.0.0.1:{http.port}"

    yield start
    for http in started:
        http.stop()


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: $KNNSERVE_ARTIFACTS, else pytest's temporary folder (never the repository)."""
    folder = Path(os.environ["KNNSERVE_ARTIFACTS"]) if os.environ.get("KNNSERVE_ARTIFACTS") else tmp_path_factory.mktemp("artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _browser_tools() -> tuple[str, str] | None:
    chromium = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    driver = shutil.which("chromedriver") or (CHROMEDRIVER if Path(CHROMEDRIVER).exists() else None)
    return (chromium, driver) if chromium and driver else None


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Headless Chromium driven by Selenium through Debian's chromedriver.

    Missing chromium or chromium-driver skips, unless KNNSERVE_REQUIRE_TOOLS is set (``make test``): then it fails.
    """
    tools = _browser_tools()
    if tools is None:
        message = "chromium and chromium-driver are needed (apt-get install chromium chromium-driver; make setup does it)"
        if os.environ.get("KNNSERVE_REQUIRE_TOOLS"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = tools[0]
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1100",
                     "--disable-extensions", "--no-first-run"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(tools[1]), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
