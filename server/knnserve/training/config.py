"""How the embedding network is built and trained: plain data, no torch import (the CLI and the
pipeline read it without the ``knnserve[cnn]`` extra)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from knnserve.errors import InvalidInputError

@dataclass(frozen=True)
class Architecture:
    """The convolutional part of the embedding network: ``widths[i]`` channels and ``convs[i]`` 3x3
    convolutions in block i, each block but the last followed by a 2x2 max-pool; the last block is
    pooled too when ``pool_last``. The embedding has ``embedding`` dimensions."""

    widths: tuple[int, ...]
    convs: tuple[int, ...]
    embedding: int
    pool_last: bool = True


ARCHITECTURES: dict[str, Architecture] = {
    "tiny": Architecture((8, 16, 16), (1, 1, 1), 16),  # for tests and smoke runs: seconds on a few hundred images
    "small": Architecture((32, 64, 128), (1, 1, 1), 128),
    "small7": Architecture((32, 64, 128), (1, 1, 1), 128, pool_last=False),
    "mid": Architecture((32, 64, 128), (1, 2, 2), 128),
    "wide": Architecture((32, 64, 128), (2, 2, 2), 128),
}
DEFAULT_ARCH = "small7"  # what ``--features cnn`` means
DEFAULT_MARGIN = 0.2  # the cosine head's additive margin unless one is given
PRECISIONS: tuple[str, ...] = ("auto", "bf16", "fp32")
HEADS: tuple[str, ...] = ("linear", "cosine")


@dataclass(frozen=True)
class CnnConfig:
    """How the embedding network is built and trained (``knnserve.training.cnn`` says what each part is).

    ``precision``: ``auto`` trains under bfloat16 autocast where the processor has bf16
    instructions (``knnserve.training.precision``) and in float32 elsewhere; ``bf16`` and ``fp32``
    force one. The exported network is float32 either way. ``head``: ``linear`` scores classes with
    a linear layer on the embedding; ``cosine`` with the cosine between the L2-normalised embedding
    and each class's normalised weight vector, times ``cosine_scale`` (a temperature of 1/scale);
    ``margin`` (cosine head only; ``None`` means ``DEFAULT_MARGIN`` there and 0 with the linear head)
    is subtracted from the true class's cosine while training (an additive cosine margin, as CosFace
    does), which packs each class tighter around its direction.
    ``dropout`` applies before the embedding's linear layer, ``head_dropout`` between the embedding
    and the class scores.
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
    margin: float | None = None  # None: DEFAULT_MARGIN with the cosine head, 0 with the linear head
    dropout: float = 0.0
    head_dropout: float = 0.0
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
        if self.margin is None:
            object.__setattr__(self, "margin", DEFAULT_MARGIN if self.head == "cosine" else 0.0)
        assert self.margin is not None
        if not 0.0 <= self.margin < 1.0:
            raise InvalidInputError("margin", "a number in [0, 1)", self.margin)
        if self.margin and self.head != "cosine":
            raise InvalidInputError("margin", "0 with head='linear' (the margin is on the cosine head's scores)", self.margin)
        for name in ("dropout", "head_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise InvalidInputError(name, "a number in [0, 1)", getattr(self, name))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields."""
        return asdict(self)


__all__ = ["ARCHITECTURES", "DEFAULT_ARCH", "Architecture", "HEADS", "PRECISIONS", "CnnConfig"]
