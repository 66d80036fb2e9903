"""Image shapes and Pillow, in one place: which model inputs are images, their layout, and decoding into them.

A model input is an image when its shape is (H, W), (H, W, C) or (C, H, W) with C at most 4;
:class:`ImageLayout` says which, and converts between the input's own layout and the (H, W, C) that
Pillow reads and writes. Pillow is imported only when a function needs it (``pillow``), so serving
never loads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from knnserve.errors import InvalidInputError, MissingExtraError

MAX_CHANNELS = 4
_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


@dataclass(frozen=True)
class ImageLayout:
    """The layout of an image input: its size, its channels, and whether they come first (C, H, W)."""

    height: int
    width: int
    channels: int
    channels_first: bool = False

    @property
    def chw(self) -> tuple[int, int, int]:
        """(channels, height, width), the order a network's NCHW input names them in."""
        return self.channels, self.height, self.width

    @property
    def pillow_mode(self) -> str:
        """The Pillow mode whose pixels fill this layout: L (grey), RGB or RGBA."""
        mode = _MODES.get(self.channels)
        if mode is None:
            raise InvalidInputError("image", "1, 3 or 4 channels (grey, RGB, RGBA)", f"{self.channels} channels")
        return mode

    def to_hwc(self, row: np.ndarray) -> np.ndarray:
        """One input row (any shape of the right size) as (H, W, C) pixels."""
        if self.channels_first:
            return np.asarray(row).reshape(self.chw).transpose(1, 2, 0)
        return np.asarray(row).reshape(self.height, self.width, self.channels)

    def from_hwc(self, pixels: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
        """(H, W) or (H, W, C) pixels as one row of ``input_shape``."""
        pixels = np.asarray(pixels).reshape(self.height, self.width, self.channels)
        if self.channels_first:
            pixels = pixels.transpose(2, 0, 1)
        return np.ascontiguousarray(pixels).reshape(input_shape)


def image_layout(shape: tuple[int, ...]) -> ImageLayout | None:
    """The layout of a model input of ``shape`` (without the batch axis), None when it is not an image."""
    if len(shape) == 2:
        return ImageLayout(shape[0], shape[1], 1)
    if len(shape) == 3 and 1 <= shape[2] <= MAX_CHANNELS:
        return ImageLayout(shape[0], shape[1], shape[2])
    if len(shape) == 3 and 1 <= shape[0] <= MAX_CHANNELS:
        return ImageLayout(shape[1], shape[2], shape[0], channels_first=True)
    return None


def require_image_layout(shape: tuple[int, ...], field: str = "images") -> ImageLayout:
    """The layout of an image input, or InvalidInputError naming ``field`` when ``shape`` is not an image."""
    layout = image_layout(tuple(shape))
    if layout is None:
        raise InvalidInputError(field, f"images of shape (H, W), (H, W, C) or (C, H, W) with C <= {MAX_CHANNELS}", tuple(shape))
    return layout


def pillow(extra: str) -> Any:
    """The PIL.Image module, or MissingExtraError naming the extra (``batch``, ``ui``) that installs Pillow."""
    try:
        from PIL import Image
    except ImportError:
        raise MissingExtraError(f"this needs Pillow: pip install 'knnserve[{extra}]'") from None
    return Image


__all__ = ["MAX_CHANNELS", "ImageLayout", "image_layout", "pillow", "require_image_layout"]
