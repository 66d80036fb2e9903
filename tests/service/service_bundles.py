"""Tiny seeded bundles for the service tests (importable by test modules, unlike conftest)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from knnserve.model import KNNModel


@dataclass(frozen=True)
class TinyData:
    """Train and query rows of one tiny bundle."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_query: np.ndarray


def blob_data(seed: int, *, n: int = 400, d: int = 16, classes: int = 4) -> TinyData:
    """Gaussian classes in d dimensions, float32."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(classes, d))
    y = rng.integers(0, classes, n)
    x = (centres[y] + rng.normal(size=(n, d))).astype(np.float32)
    q = (centres[rng.integers(0, classes, 64)] + rng.normal(size=(64, d))).astype(np.float32)
    return TinyData(x, y, q)


def pixel_data(seed: int, *, n: int = 300) -> TinyData:
    """uint8 6x6 'images' of 3 classes."""
    rng = np.random.default_rng(seed)
    templates = rng.integers(0, 256, size=(3, 6, 6))
    y = rng.integers(0, 3, n)
    noise = rng.integers(-60, 61, size=(n, 6, 6))
    x = np.clip(templates[y] + noise, 0, 255).astype(np.uint8)
    q = np.clip(templates[rng.integers(0, 3, 32)] + rng.integers(-60, 61, size=(32, 6, 6)), 0, 255).astype(np.uint8)
    return TinyData(x, y, q)


def save_model(root: Path, name: str, version: int, data: TinyData, *, index: str = "flat", classes: tuple[str, ...] | None = None) -> KNNModel:
    """Fit and save a bundle at root/name/version; return the model as loaded back (what the server serves)."""
    n_classes = int(data.y_train.max()) + 1
    names = classes or tuple(f"class{c}" for c in range(n_classes))
    model = KNNModel.fit(data.x_train, data.y_train, class_names=names, index=index)
    model.save(root / name / str(version), name=name)
    return KNNModel.load(root / name / str(version))
