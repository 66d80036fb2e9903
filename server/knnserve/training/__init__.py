"""Training the feature extractor: the only package that imports torch (the optional ``knnserve[cnn]`` extra).

Nothing that serves, predicts or evaluates imports it: a trained network leaves here as an ONNX
graph that ``knnserve.features.extractor`` runs with onnxruntime. ``require_torch`` is what the CLI
calls first, so ``--features cnn`` without the extra fails at once, in one line.
"""

from __future__ import annotations

from types import ModuleType

from knnserve.errors import MissingExtraError

CNN_EXTRA = "knnserve[cnn]"


def require_torch(what: str = "--features cnn") -> ModuleType:
    """Import torch, or raise MissingExtraError naming the extra that brings it."""
    try:
        import torch
    except ImportError:
        raise MissingExtraError(
            f"{what} trains a network with PyTorch, which is not installed; "
            f'install the extra: pip install "{CNN_EXTRA}" (serving needs only onnxruntime)'
        ) from None
    return torch


__all__ = ["CNN_EXTRA", "MissingExtraError", "require_torch"]
