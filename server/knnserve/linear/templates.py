"""The "templates" view of a linear head: each row of W drawn as an image of the input's shape."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from knnserve.errors import InvalidInputError
from knnserve.plotting import pyplot, save_figure


def template_images(templates: np.ndarray) -> np.ndarray:
    """Scale each class template to [0, 1] for display: (C, H, W) grey or (C, H, W, 3) colour.

    Each template is scaled by its own range, so what shows is where a class puts positive and
    negative weight, not how large its weights are compared to another class.
    """
    if templates.ndim == 2:  # flat inputs: show each template as a near-square strip
        side = math.ceil(math.sqrt(templates.shape[1]))
        padded = np.zeros((templates.shape[0], side * side), dtype=np.float32)
        padded[:, : templates.shape[1]] = templates
        templates = padded.reshape(-1, side, side)
    if templates.ndim not in (3, 4) or (templates.ndim == 4 and templates.shape[-1] != 3):
        raise InvalidInputError("input_shape", "(H, W), (H, W, 3) or flat vectors", str(templates.shape[1:]))
    axes = tuple(range(1, templates.ndim))
    low = templates.min(axis=axes, keepdims=True)
    high = templates.max(axis=axes, keepdims=True)
    return (templates - low) / np.maximum(high - low, 1e-12)


def plot_templates(model: Any, path: str | Path, *, columns: int = 5) -> Path:
    """Draw one tile per class (its template and name) from a model with a linear head; save a PNG."""
    if model.linear is None:
        raise InvalidInputError("model", "a bundle with a linear head (train with --linear softmax or svm)", "k-NN only")
    if getattr(model, "extractor", None) is not None:
        raise InvalidInputError(
            "model", "a bundle whose linear head reads pixels: templates exist only for pixel-space heads (W maps back "
            "to an image only when every step before it is affine)",
            f"a head over the {model.extractor.embedding_dim}-d embedding of the extractor {model.extractor.record.source}",
        )
    images = template_images(model.linear.templates())
    names = [model.class_names[int(c)] for c in model.linear.classes_]
    plt = pyplot()
    rows = math.ceil(len(images) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.0 * columns, 2.3 * rows), dpi=110, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, name in zip(axes.ravel(), images, names):
        ax.imshow(image, cmap=None if image.ndim == 3 else "gray", interpolation="nearest")
        ax.set_title(name, fontsize=9)
    loss = model.linear.loss
    fig.suptitle(f"linear head templates ({loss}): rows of W in input space", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
