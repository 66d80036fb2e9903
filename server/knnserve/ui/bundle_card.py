"""What a model's bundle on disk adds to its card: accuracies, the CV curve, preprocessing and the linear templates.

Read-only, through the bundle's own loader (``read_manifest``); the one array group it needs
(``linear.npz``) is checked against the manifest's size and sha256 before it is read, and the
index file is never opened: the page answers queries through the server.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from knnserve.bundle import Manifest, read_manifest
from knnserve.errors import BundleError, InvalidInputError
from knnserve.ui.images import data_url, png_bytes

LINEAR_FILE = "linear.npz"


@dataclass(frozen=True)
class BundleCard:
    """The parts of a model card only the bundle knows (each None or empty when the bundle lacks it)."""

    path: str
    dataset_checksum: str | None
    accuracies: dict[str, float] = field(default_factory=dict)
    preprocessing: str = ""
    extractor: str = ""
    index_storage: str = ""
    index_bytes: int = 0
    cv_plot: str | None = None
    cv_best: str = ""
    templates: list[dict[str, str]] = field(default_factory=list)
    templates_note: str = ""

    def to_json(self) -> dict[str, Any]:
        """The card as the page's JSON."""
        return {
            "path": self.path, "accuracies": self.accuracies, "preprocessing": self.preprocessing,
            "extractor": self.extractor, "index_storage": self.index_storage, "index_bytes": self.index_bytes,
            "cv_plot": self.cv_plot, "cv_best": self.cv_best,
            "templates": self.templates, "templates_note": self.templates_note,
        }


def bundle_folder(models_dir: Path, name: str, version: int) -> Path:
    """``models_dir/NAME/VERSION``, refusing names that would leave the models folder."""
    if not name or "/" in name or "\\" in name or name in (".", "..") or name.startswith("."):
        raise InvalidInputError("model", "a model name", repr(name))
    return models_dir / name / str(int(version))


def accuracies(manifest: Manifest) -> dict[str, float]:
    """Every accuracy the bundle stores (test-split accuracies of each head, the network's validation accuracy...)."""
    return {key: float(value) for key, value in sorted(manifest.metrics.items())
            if "accuracy" in key and isinstance(value, (int, float))}


def cv_plot(cv: dict[str, Any], *, title: str) -> str:
    """A PNG data URL of accuracy against k, one line per (preprocessing, weighting), the chosen one circled."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    candidates = cv.get("candidates", [])
    for preprocess, weights in sorted({(c["preprocess"], c["weights"]) for c in candidates}):
        points = sorted((c for c in candidates if (c["preprocess"], c["weights"]) == (preprocess, weights)), key=lambda c: c["k"])
        ax.errorbar([c["k"] for c in points], [100 * c["mean"] for c in points], yerr=[100 * c["std"] for c in points],
                    marker="o", capsize=3, label=f"{preprocess}, {weights}")
    best = cv.get("best")
    if best:
        ax.scatter([best["k"]], [100 * best["mean"]], s=160, facecolors="none", edgecolors="red", zorder=5, label="chosen")
    folds = cv.get("folds", 1)
    ax.set_xlabel("k (neighbours that vote)")
    ax.set_ylabel("validation accuracy (%)" if folds == 1 else f"{folds}-fold CV accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return data_url(buffer.getvalue())


def _verified_npz(folder: Path, manifest: Manifest, name: str) -> dict[str, np.ndarray]:
    entry = manifest.files.get(name)
    if entry is None:
        raise BundleError(f"{folder / 'manifest.json'}: lists no {name}")
    data = (folder / name).read_bytes()
    if len(data) != entry.bytes or hashlib.sha256(data).hexdigest() != entry.sha256:
        raise BundleError(f"{folder / name}: size or sha256 does not match the manifest; the bundle is corrupt")
    with np.load(io.BytesIO(data), allow_pickle=False) as group:
        return {key: group[key] for key in group.files}


def linear_templates(folder: Path, manifest: Manifest) -> tuple[list[dict[str, str]], str]:
    """One PNG per class of the linear head's weights in input space, and a note when there are none."""
    from knnserve.linear import LinearClassifier
    from knnserve.linear.templates import template_images

    if manifest.linear is None:
        return [], "no linear head in this bundle"
    if manifest.extractor is not None:
        return [], ("the linear head reads the extractor's embedding: its weights have no image to map back to "
                    "(templates exist for pixel heads only)")
    head = LinearClassifier.from_arrays(_verified_npz(folder, manifest, LINEAR_FILE), manifest.linear)
    try:
        images = template_images(head.templates())
    except InvalidInputError as exc:  # e.g. an L2-normalised head: not affine, no templates
        return [], str(exc)
    names = [manifest.class_names[int(c)] for c in head.classes_]
    return [{"class": name, "image": data_url(png_bytes(image))} for name, image in zip(names, images)], ""


def read_card(models_dir: Path, name: str, version: int) -> BundleCard | None:
    """The bundle's part of the card, or None when ``models_dir`` has no such bundle (a remote server's model)."""
    folder = bundle_folder(models_dir, name, version)
    if not (folder / "manifest.json").is_file():
        return None
    manifest = read_manifest(folder)
    cv = manifest.metrics.get("knn_cv") or manifest.metrics.get("knn_validation")
    best = ""
    plot = None
    if isinstance(cv, dict) and cv.get("candidates"):
        chosen = cv.get("best") or {}
        best = (f"k={chosen.get('k')}, {chosen.get('weights')}, {chosen.get('preprocess')}: "
                f"{100 * float(chosen.get('mean', 0)):.2f}% ± {100 * float(chosen.get('std', 0)):.2f}%")
        plot = cv_plot(cv, title=f"{name} v{version}: choosing k on the training split")
    templates, note = linear_templates(folder, manifest)
    return BundleCard(
        path=str(folder),
        dataset_checksum=manifest.dataset.checksum if manifest.dataset is not None else None,
        accuracies=accuracies(manifest),
        preprocessing=str(manifest.metrics.get("knn_preprocess", "")),
        extractor=manifest.extractor.describe() if manifest.extractor is not None else "",
        index_storage=manifest.index.storage,
        index_bytes=manifest.files["index.faiss"].bytes if "index.faiss" in manifest.files else manifest.index.serialized_bytes,
        cv_plot=plot,
        cv_best=best,
        templates=templates,
        templates_note=note,
    )


__all__ = ["BundleCard", "accuracies", "bundle_folder", "cv_plot", "linear_templates", "read_card"]
