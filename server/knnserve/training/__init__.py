"""Training the feature extractor: the only package that imports torch (the optional ``knnserve[cnn]`` extra).

Nothing that serves, predicts or evaluates imports it: a trained network leaves here as an ONNX
graph that ``knnserve.features.extractor`` runs with onnxruntime. ``require_torch`` is what the CLI
calls first, so ``--features cnn`` without the extra fails at once, in one line.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

from knnserve.errors import MissingExtraError

CNN_EXTRA = "knnserve[cnn]"


def require_torch(what: str = "--features cnn") -> ModuleType:
    """Import torch, or raise MissingExtraError naming the extra that brings it.

    Before the first import, torch's OpenMP threads are told to sleep, not spin, while they wait
    for work (``OMP_WAIT_POLICY=PASSIVE``, unless set): on this project's shared 2-core machine a
    training step with 2 spinning threads took 1,286 ms (635 ms of CPU) against 196 ms (103 ms of
    CPU) with sleeping ones, because the spinning thread took the core its partner needed.
    """
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import torch
    except ImportError:
        raise MissingExtraError(
            f"{what} trains a network with PyTorch, which is not installed; "
            f'install the extra: pip install "{CNN_EXTRA}" (serving needs only onnxruntime)'
        ) from None
    return torch


__all__ = ["CNN_EXTRA", "MissingExtraError", "require_torch"]
