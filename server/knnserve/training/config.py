"""How the embedding network is built and trained: plain data, no torch import (the CLI and the
pipeline read it without the ``knnserve[cnn]`` extra)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from knnserve.errors import InvalidInputError

# name -> (channels of the three blocks, convolutions of each block, embedding size)
ARCHITECTURES: dict[str, tuple[tuple[int, ...], tuple[int, ...], int]] = {
    "tiny": ((8, 16, 16), (1, 1, 1), 16),  # for tests and smoke runs: seconds on a few hundred images
    "small": ((32, 64, 128), (1, 1, 1), 128),
    "mid": ((32, 64, 128), (1, 2, 2), 128),
    "wide": ((32, 64, 128), (2, 2, 2), 128),
}
DEFAULT_ARCH = "small"  # what ``--features cnn`` means
PRECISIONS: tuple[str, ...] = ("auto", "bf16", "fp32")
HEADS: tuple[str, ...] = ("linear", "cosine")


@dataclass(frozen=True)
class CnnConfig:
    """How the embedding network is built and trained (``knnserve.training.cnn`` says what each part is).

    ``precision``: ``auto`` trains under bfloat16 autocast where the processor has bf16
    instructions (``knnserve.training.precision``) and in float32 elsewhere; ``bf16`` and ``fp32``
    force one. The exported network is float32 either way. ``head``: ``linear`` scores classes with
    a linear layer on the embedding; ``cosine`` with the cosine between the L2-normalised embedding
    and each class's normalised weight vector, times ``cosine_scale`` (a temperature of 1/scale).
    """

    arch: str = DEFAULT_ARCH
    epochs: int = 14
    patience: int | None = 3
    batch_size: int = 128
    max_lr: float = 3e-3
    weight_decay: float = 0.01
    warmup: float = 0.25
    pad: int = 2
    hflip: bool = True
    label_smoothing: float = 0.1
    head: str = "cosine"
    cosine_scale: float = 16.0
    precision: str = "auto"
    threads: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise InvalidInputError("arch", f"one of {', '.join(ARCHITECTURES)}", repr(self.arch))
        if self.epochs < 1:
            raise InvalidInputError("epochs", "an integer >= 1", self.epochs)
        if self.precision not in PRECISIONS:
            raise InvalidInputError("precision", f"one of {', '.join(PRECISIONS)}", repr(self.precision))
        if self.head not in HEADS:
            raise InvalidInputError("head", f"one of {', '.join(HEADS)}", repr(self.head))
        if not 0.0 <= self.label_smoothing < 1.0:
            raise InvalidInputError("label_smoothing", "a number in [0, 1)", self.label_smoothing)
        if not self.cosine_scale > 0:
            raise InvalidInputError("cosine_scale", "a number > 0", self.cosine_scale)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields."""
        return asdict(self)


__all__ = ["ARCHITECTURES", "DEFAULT_ARCH", "HEADS", "PRECISIONS", "CnnConfig"]
