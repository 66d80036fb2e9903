"""Tiny seeded datasets (as .npz files a user could pass with --data-dir) and a fast evaluation config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from knnserve.evaluate import EvaluateConfig, IndexRequest


def write_pixel_npz(path: Path, *, seed: int = 7, n_train: int = 900, n_test: int = 120) -> Path:
    """uint8 8x8 'images' of 4 classes (a noisy template each), split into train and test, saved as .npz."""
    rng = np.random.default_rng(seed)
    templates = rng.integers(0, 256, size=(4, 8, 8))
    y = rng.integers(0, 4, n_train + n_test)
    x = np.clip(templates[y] + rng.integers(-90, 91, size=(y.size, 8, 8)), 0, 255).astype(np.uint8)
    np.savez(path, x_train=x[:n_train], y_train=y[:n_train], x_test=x[n_train:], y_test=y[n_train:])
    return path


@pytest.fixture
def pixel_npz(tmp_path: Path) -> Path:
    return write_pixel_npz(tmp_path / "pixels.npz")


@pytest.fixture
def fast_config(tmp_path: Path, pixel_npz: Path) -> EvaluateConfig:
    """One pass per setting, few single queries, one FAISS thread (the test machine is shared)."""
    return EvaluateConfig(
        out=tmp_path / "out",
        data_dir=pixel_npz,
        indexes=(IndexRequest("flat"),),
        k=10,
        vote_k=5,
        repeats=1,
        single_queries=15,
        exact_single_queries=8,
        threads=1,
        cache_dir=tmp_path / "cache",
        progress=False,
    )

