"""How the embedding network is built and trained: plain data, no torch import (the CLI and the
pipeline read it without the ``knnserve[cnn]`` extra)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from knnserve.errors import InvalidInputError

# name -> (channels of the three blocks, convolutions a block, embedding size)
ARCHITECTURES: dict[str, tuple[tuple[int, ...], int, int]] = {
    "tiny": ((8, 16, 16), 1, 16),  # for tests and smoke runs: seconds on a few hundred images
    "small": ((32, 64, 128), 1, 128),
    "wide": ((32, 64, 128), 2, 128),
}


@dataclass(frozen=True)
class CnnConfig:
    """How the embedding network is built and trained (``knnserve.training.cnn`` says what each part is)."""

    arch: str = "small"
    epochs: int = 8
    patience: int | None = 3
    batch_size: int = 128
    max_lr: float = 3e-3
    weight_decay: float = 0.01
    warmup: float = 0.25
    pad: int = 2
    hflip: bool = True
    threads: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise InvalidInputError("arch", f"one of {', '.join(ARCHITECTURES)}", repr(self.arch))
        if self.epochs < 1:
            raise InvalidInputError("epochs", "an integer >= 1", self.epochs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields."""
        return asdict(self)


__all__ = ["ARCHITECTURES", "CnnConfig"]
