"""Image files (PNG, JPEG, ...) decoded with Pillow into rows of the model's input shape; one row a file."""

from __future__ import annotations

import io
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from knnserve.batch.readers.base import FileFacts, ReadOptions
from knnserve.batch.rows import RowBatch, RowSpec, single_rows
from knnserve.images import image_layout, pillow

IMAGE = "image"
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
# Pillow releases the GIL while decoding, so a few threads decode a shard's files in parallel.
DECODE_THREADS = 4


def image_mode(spec: RowSpec) -> str:
    """The Pillow mode that gives rows of the model's shape: its image layout's, L for flat rows."""
    layout = image_layout(spec.input_shape)
    return layout.pillow_mode if layout is not None else "L"


def decode(content: bytes | Path, spec: RowSpec) -> np.ndarray | str:
    """One image as a uint8 array shaped like the model's input, or a string saying why it cannot be."""
    image_module = pillow("batch")
    try:
        with image_module.open(io.BytesIO(content) if isinstance(content, bytes) else content) as image:
            image.load()
            pixels = np.asarray(image.convert(image_mode(spec)))
    except Exception as error:  # noqa: BLE001 - Pillow's plugins raise many types; a bad image is a bad row, not a crash
        return f"image: cannot decode ({type(error).__name__}: {error})"
    layout = image_layout(spec.input_shape)
    if layout is None:
        pixels = pixels.reshape(-1)  # a model of flat rows takes the pixels flattened, if there are as many
    elif pixels.shape[:2] == (layout.height, layout.width):
        pixels = layout.from_hwc(pixels, spec.input_shape)
    if not spec.accepts(pixels.shape):
        return f"image: expected {spec.expected()} pixels for this model, got {pixels.shape}"
    return pixels


def describe_image(path: Path, source: str, options: ReadOptions, spec: RowSpec) -> FileFacts:
    """An image file is one row; it is decoded (and found bad or not) only when read."""
    return FileFacts(rows=1)


def read_images(files: Sequence[tuple[str, Path]], spec: RowSpec) -> RowBatch:
    """Decode (source, path) image files, a few at a time, into one row each."""
    pillow("batch")
    with ThreadPoolExecutor(max_workers=DECODE_THREADS) as pool:
        decoded = list(pool.map(lambda item: decode(item[1], spec), files))
    return single_rows([source for source, _ in files], [0] * len(files), decoded, spec)


__all__ = ["DECODE_THREADS", "IMAGE", "IMAGE_SUFFIXES", "decode", "describe_image", "image_mode", "read_images"]
