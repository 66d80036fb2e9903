"""Helpers of the inspection page's tests (importable by test modules, unlike conftest): data, servers, HTTP calls."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from knnserve.data.dataset import Dataset
from knnserve.service.config import ServeConfig
from knnserve.service.server import KnnServer
from knnserve.ui.images import png_bytes

TOKEN = "ui-s3cret"
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


def start_grpc(models: Path, token: str | None = None) -> tuple[KnnServer, str]:
    """Start a real knnserve server on 127.0.0.1:0 over ``models`` (wanting ``token`` when given); (server, target)."""
    server = KnnServer(ServeConfig(models_dir=models, port=0, grace_s=1.0, token=token))
    port = server.start()
    server.load_models()
    return server, f"127.0.0.1:{port}"


# start_ui(target, **UiConfig overrides) -> the page's base URL (the conftest fixture of that name)
UiFactory = Callable[..., str]


def call(base: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None,
         raw: bytes | None = None) -> tuple[int, dict[str, Any]]:
    """(status, JSON answer) of a GET, or a POST when a body is given."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        answer = json.loads(error.read())
        assert "Traceback" not in json.dumps(answer)
        return error.code, answer


def png_url(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode()
