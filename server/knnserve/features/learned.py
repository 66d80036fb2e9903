"""Where the heads' features come from: ``--features pixels`` (the rows as they are), ``cnn[:ARCH]`` (an
embedding network trained here on the training split, exported to ONNX and checked against torch)
or ``onnx:PATH`` (an image network the user brings). Either of the last two ends as an
:class:`~knnserve.features.extractor.Extractor` (onnxruntime) and the embeddings of the training
and test images, which the k-NN index and the linear head are then fitted on.

torch is imported only for ``cnn`` and only through ``knnserve.training``; :func:`check_features_available`
says at once, in one line, when the extra is missing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from knnserve.data.dataset import Dataset
from knnserve.data.split import validation_split
from knnserve.errors import InvalidInputError
from knnserve.features.extractor import Extractor, inspect_onnx, match_images
from knnserve.training.config import ARCHITECTURES, DEFAULT_ARCH, CnnConfig

# The rows carved from the training split to stop the network's training and choose the k-NN
# configuration and the linear head: 5,000 of Fashion-MNIST's 60,000.
FEATURES_VAL_FRACTION = 1 / 12
FEATURES_EXPECTED = f"pixels, cnn, {', '.join(f'cnn:{a}' for a in ARCHITECTURES)} or onnx:PATH"


@dataclass(frozen=True)
class FeaturesSpec:
    """A parsed ``--features`` value."""

    kind: str  # "pixels", "cnn" or "onnx"
    arch: str = DEFAULT_ARCH
    path: Path | None = None

    @property
    def name(self) -> str:
        """``pixels``, ``cnn:small``, ``onnx:FILE``."""
        if self.kind == "cnn":
            return f"cnn:{self.arch}"
        if self.kind == "onnx":
            return f"onnx:{self.path}"
        return "pixels"


def parse_features(text: str) -> FeaturesSpec:
    """``pixels`` | ``cnn`` | ``cnn:ARCH`` | ``onnx:PATH`` -> FeaturesSpec (InvalidInputError otherwise)."""
    value = text.strip()
    if value == "pixels":
        return FeaturesSpec("pixels")
    if value == "cnn":
        return FeaturesSpec("cnn")
    if value.startswith("cnn:") and value[4:] in ARCHITECTURES:
        return FeaturesSpec("cnn", arch=value[4:])
    if value.startswith("onnx:") and value[5:]:
        return FeaturesSpec("onnx", path=Path(value[5:]).expanduser())
    raise InvalidInputError("features", FEATURES_EXPECTED, repr(text))


def check_features_available(spec: FeaturesSpec) -> None:
    """Fail at once, before any data is read: the cnn extra missing, or the ONNX file absent."""
    if spec.kind == "cnn":
        from knnserve.training import require_torch

        require_torch(f"--features {spec.name}")
    elif spec.kind == "onnx":
        assert spec.path is not None
        if not spec.path.is_file():
            raise InvalidInputError("features", "onnx:PATH naming an ONNX model file", f"{spec.path} (no such file)")


@dataclass
class LearnedFeatures:
    """An extractor and what it made of the dataset: embeddings of every training and test image.

    ``fit_rows`` / ``val_rows`` index the training split: the network was trained on the first and
    stopped on the second, and the k-NN configuration and the linear head are chosen on them too.
    """

    extractor: Extractor
    train: np.ndarray
    test: np.ndarray
    fit_rows: np.ndarray
    val_rows: np.ndarray
    metrics: dict[str, Any] = field(default_factory=dict)
    network: Any = None  # the trained torch network (cnn only): what benchmarks compare onnxruntime with


def _rows(images: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(images.reshape(images.shape[0], -1), dtype=np.float32)


def _extract(extractor: Extractor, images: np.ndarray, image_shape: tuple[int, ...]) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    out = extractor(_rows(images), image_shape) if images.shape[0] else np.zeros((0, extractor.embedding_dim), np.float32)
    return out, time.perf_counter() - started


def learn_features(
    dataset: Dataset,
    spec: FeaturesSpec,
    cnn: CnnConfig = CnnConfig(),
    *,
    seed: int = 0,
    extractor_threads: int | None = None,
    progress: bool = False,
) -> LearnedFeatures:
    """Train (``cnn``) or take (``onnx``) the extractor, and embed the dataset's images with it (onnxruntime)."""
    image_shape = dataset.image_shape
    fit_rows, val_rows = validation_split(dataset.y_train, FEATURES_VAL_FRACTION, seed)
    if spec.kind == "onnx":
        assert spec.path is not None
        check_features_available(spec)
        record = inspect_onnx(spec.path)
        match_images(record, image_shape, what="features")
        record = record.model_copy(update={"scale": 255.0 if dataset.x_train.dtype == np.uint8 else 1.0})
        extractor = Extractor(spec.path.read_bytes(), record, threads=extractor_threads)
        train, train_s = _extract(extractor, dataset.x_train, image_shape)
        test, test_s = _extract(extractor, dataset.x_test, image_shape)
        metrics = {"features": spec.name, "extract_seconds": round(train_s + test_s, 3)}
        return LearnedFeatures(extractor, train, test, fit_rows, val_rows, metrics)
    if spec.kind != "cnn":
        raise InvalidInputError("features", "cnn or onnx:PATH for learned features", spec.name)
    return _learn_cnn(dataset, spec, cnn, fit_rows, val_rows, extractor_threads=extractor_threads, progress=progress)


def _learn_cnn(dataset: Dataset, spec: FeaturesSpec, cnn: CnnConfig, fit_rows: np.ndarray, val_rows: np.ndarray, *,
               extractor_threads: int | None, progress: bool) -> LearnedFeatures:
    from knnserve.training import require_torch

    require_torch(f"--features {spec.name}")
    from knnserve.training.cnn import pixel_scale, predict_logits, to_nchw, train_network
    from knnserve.training.export import check_parity, export_onnx, record_of

    config = CnnConfig(**{**cnn.to_dict(), "arch": spec.arch})
    x, y = dataset.x_train, dataset.y_train
    trained = train_network(x[fit_rows], y[fit_rows], x[val_rows], y[val_rows], dataset.n_classes, config, progress=progress)
    started = time.perf_counter()
    onnx = export_onnx(trained)
    export_s = time.perf_counter() - started
    scale = pixel_scale(x)
    extractor = Extractor(onnx, record_of(trained, onnx, scale=scale, source=spec.name), threads=extractor_threads)
    train, train_s = _extract(extractor, x, dataset.image_shape)
    parity = check_parity(trained.net, extractor, x[val_rows], train[fit_rows], y[fit_rows], n_classes=dataset.n_classes)
    extractor.record = extractor.record.model_copy(update={"parity": parity})
    test, test_s = _extract(extractor, dataset.x_test, dataset.image_shape)
    metrics: dict[str, Any] = {
        "features": spec.name,
        "cnn_train_seconds": round(trained.seconds, 3),
        "cnn_cpu_seconds": round(trained.cpu_seconds, 3),
        "cnn_epochs_run": len(trained.history),
        "cnn_best_epoch": trained.best_epoch,
        "cnn_val_accuracy": trained.best_val_accuracy,
        "onnx_export_seconds": round(export_s, 3),
        "extract_seconds": round(train_s + test_s, 3),
        "onnx_max_abs_diff": parity.max_abs_diff,
    }
    if dataset.x_test.shape[0]:
        logits = predict_logits(trained.net, to_nchw(dataset.x_test, scale))
        metrics["cnn_test_accuracy"] = float((logits.argmax(1).numpy() == dataset.y_test).mean())
    return LearnedFeatures(extractor, train, test, fit_rows, val_rows, metrics, network=trained.net)


__all__ = [
    "FEATURES_EXPECTED",
    "FEATURES_VAL_FRACTION",
    "FeaturesSpec",
    "LearnedFeatures",
    "check_features_available",
    "learn_features",
    "parse_features",
]
