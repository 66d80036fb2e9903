"""Tiny seeded data and a tiny CNN bundle for the learned-feature tests (importable by test modules)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np


def template_images(seed: int, n: int, shape: tuple[int, ...], classes: int = 3, noise: int = 70) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images of ``shape``: each class a fixed random template plus seeded noise (a CNN learns them in seconds)."""
    templates = np.random.default_rng(1000 + classes).integers(0, 256, size=(classes, *shape))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = np.clip(templates[y] + rng.integers(-noise, noise + 1, size=(n, *shape)), 0, 255).astype(np.uint8)
    return x, y


@dataclass(frozen=True)
class CnnBundle:
    """A bundle with a tiny trained CNN extractor: models folder root/NAME/1, the data, the training result."""

    root: Path
    path: Path
    dataset: Any
    result: Any


def tiny_onnx(path: Path, input_shape: list[int | str], *, out: int = 8, seed: int = 0) -> Path:
    """An ONNX image model written with onnx's helpers (no torch): flatten -> matmul -> relu -> [batch, out]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    features = int(np.prod([d for d in input_shape[1:]]))
    weights = np.random.default_rng(seed).normal(size=(features, out)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["flat"], axis=1), helper.make_node("MatMul", ["flat", "w"], ["mm"]),
         helper.make_node("Relu", ["mm"], ["features"])],
        "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [input_shape[0], out])],
        initializer=[numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def make_cnn_bundle(root: Path) -> CnnBundle:
    """Train a tiny CNN bundle (16x16 grey images, 3 classes, HNSW, softmax head) into root/shapes/1."""
    from knnserve.data.dataset import Dataset
    from knnserve.train import FeaturesConfig, KnnConfig, LinearConfig, save_trained, train_model
    from knnserve.training.config import CnnConfig

    x_train, y_train = template_images(1, 360, (16, 16))
    x_test, y_test = template_images(2, 60, (16, 16))
    dataset = Dataset("shapes", x_train, y_train, x_test, y_test, ("disc", "bar", "ring"), source="synthetic")
    dataset = replace(dataset, checksum=dataset.computed_checksum())
    result = train_model(
        dataset, KnnConfig(index="hnsw", choose_k=True, preprocess="auto", cv_ks=(1, 3, 5)), LinearConfig("softmax"),
        features=FeaturesConfig("cnn:tiny", CnnConfig(epochs=3, threads=1, head="linear", label_smoothing=0.0)),  # bundle mechanics
    )
    path = root / "shapes" / "1"
    save_trained(result, dataset, path, name="shapes")
    return CnnBundle(root, path, dataset, result)
