"""Fixtures of the inspection page's tests: a tiny image dataset and its bundles, real gRPC servers, the page, headless Chromium."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from knnserve.data import load_dataset
from knnserve.data.dataset import Dataset
from knnserve.service.config import ServeConfig
from knnserve.service.server import KnnServer
from knnserve.train import KnnConfig, LinearConfig, save_trained, train_model
from knnserve.ui.app import UiApp, UiConfig
from knnserve.ui.web import UiHttpServer
from knnserve_client.wire.query import KnnQuery

TOKEN = "ui-s3cret"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CLASS_NAMES = ("ring", "bar", "cross")


@dataclass(frozen=True)
class UiModels:
    """The tiny dataset's file, the dataset as loaded, and the models folder trained on it."""

    data_file: Path
    dataset: Dataset
    models: Path


def tiny_images(seed: int = 15, n_train: int = 240, n_test: int = 60) -> dict[str, np.ndarray]:
    """uint8 12x12 grey images of three shapes (a ring, a bar, a cross) with noise, as an .npz's arrays."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:12, :12]
    ring = (np.abs(np.hypot(yy - 5.5, xx - 5.5) - 4) < 1.2) * 80
    bar = ((xx >= 4) & (xx <= 7)) * 80
    cross = ((np.abs(xx - yy) < 1.5) | (np.abs(xx + yy - 11) < 1.5)) * 80
    shapes = np.stack([ring, bar, cross]).astype(np.int64)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 3, n)
        x = np.clip(shapes[y] + rng.integers(-180, 181, size=(n, 12, 12)), 0, 255).astype(np.uint8)
        return x, y

    x_train, y_train = make(n_train)
    x_test, y_test = make(n_test)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test,
            "class_names": np.array(CLASS_NAMES)}


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


def _start_grpc(models: Path, token: str | None = None) -> tuple[KnnServer, str]:
    server = KnnServer(ServeConfig(models_dir=models, port=0, grace_s=1.0, token=token))
    port = server.start()
    server.load_models()
    return server, f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def grpc_target(ui_models: UiModels) -> Iterator[str]:
    """A real knnserve server over the tiny models, no auth."""
    server, target = _start_grpc(ui_models.models)
    yield target
    server.stop(0)


@pytest.fixture(scope="module")
def grpc_auth_target(ui_models: UiModels) -> Iterator[str]:
    """A real knnserve server over the tiny models that wants the bearer token ``TOKEN``."""
    server, target = _start_grpc(ui_models.models, token=TOKEN)
    yield target
    server.stop(0)


UiFactory = Callable[..., str]


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
