"""Images in and out of the inspection page: uploaded PNG/JPEG decoded to a model's input, arrays drawn as PNG.

Which inputs are images, and their layout, is ``knnserve.images``'s; Pillow (the ``knnserve[ui]`` extra)
is imported only when a function runs, so nothing that serves models loads it.
"""

from __future__ import annotations

import base64
import io

import numpy as np

from knnserve.errors import InvalidInputError, MissingExtraError
from knnserve.images import image_layout, pillow

# An upload larger than this is refused before it is decoded (a Fashion-MNIST PNG is under 1 KB).
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
# Pixels an upload may have once decoded: stops a small file that decompresses to a huge image.
MAX_UPLOAD_PIXELS = 4096 * 4096
ACCEPTED_FORMATS = ("PNG", "JPEG")


def require_extra() -> None:
    """Raise MissingExtraError, naming the extra, unless Pillow and matplotlib (``knnserve[ui]``) import."""
    pillow("ui")
    try:
        import matplotlib  # noqa: F401 - the CV curve on the model card
    except ImportError as exc:
        raise MissingExtraError("the inspection page needs matplotlib: pip install 'knnserve[ui]'") from exc


def describe_shape(input_shape: tuple[int, ...]) -> str:
    """Words for a model input, e.g. ``28x28 grey images`` or ``vectors of 16 values``."""
    layout = image_layout(input_shape)
    if layout is None:
        return f"vectors of shape {tuple(input_shape)}"
    return f"{layout.width}x{layout.height} {'grey' if layout.channels == 1 else 'colour'} images"


def decode_image(data: bytes, input_shape: tuple[int, ...], *, resize: bool = False) -> np.ndarray:
    """Decode PNG or JPEG bytes into one uint8 row of ``input_shape``.

    Colour is converted to grey (or grey to colour) as the model takes it. An image of another size
    is refused unless ``resize``, which scales it to the model's size (area averaging: the canvas a
    user draws on is ten times the input). Raises InvalidInputError naming what was expected and what came.
    """
    layout = image_layout(input_shape)
    if layout is None:
        raise InvalidInputError("image", f"a model whose input is an image; this one takes {describe_shape(input_shape)}",
                                "an image")
    if not data:
        raise InvalidInputError("image", "a PNG or JPEG file", "an empty upload")
    if len(data) > MAX_UPLOAD_BYTES:
        raise InvalidInputError("image", f"a file of at most {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB", f"{len(data)} bytes")
    image_module = pillow("ui")
    try:
        image = image_module.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except (image_module.UnidentifiedImageError, OSError, ValueError):
        raise InvalidInputError("image", "a PNG or JPEG file", "something else (not an image Pillow can read as PNG or JPEG)") from None
    height, width = layout.height, layout.width
    if image.width * image.height > MAX_UPLOAD_PIXELS:
        raise InvalidInputError("image", f"at most {MAX_UPLOAD_PIXELS} pixels", f"{image.width}x{image.height}")
    if (image.width, image.height) != (width, height) and not resize:
        raise InvalidInputError(
            "image", f"{describe_shape(input_shape)} (or tick 'resize' to scale it)", f"a {image.width}x{image.height} image"
        )
    try:
        image = image.convert(layout.pillow_mode)
        if (image.width, image.height) != (width, height):
            image = image.resize((width, height), image_module.Resampling.BOX)
        pixels = np.asarray(image, dtype=np.uint8)
    except (OSError, ValueError):
        raise InvalidInputError("image", "a complete PNG or JPEG file", "a truncated or corrupt one") from None
    return layout.from_hwc(pixels, input_shape)


def png_bytes(image: np.ndarray, *, scale: int = 1) -> bytes:
    """A PNG of one image: (H, W) or (H, W, 1) grey, (H, W, 3) or (H, W, 4) colour; uint8, or floats in [0, 1].

    ``scale`` repeats each pixel (nearest neighbour), so small images stay sharp in any browser.
    """
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise InvalidInputError("image", "an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array", f"shape {array.shape}")
    if array.dtype != np.uint8:
        array = np.clip(np.nan_to_num(array.astype(np.float64)) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if scale > 1:
        array = array.repeat(scale, axis=0).repeat(scale, axis=1)
    buffer = io.BytesIO()
    pillow("ui").fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def data_url(png: bytes) -> str:
    """A ``data:image/png;base64,...`` URL: how the page gets images (inside JSON, so behind the token)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def thumbnail(row: np.ndarray, input_shape: tuple[int, ...]) -> str | None:
    """A data URL of one dataset row or input as a PNG, None when the model's input is not an image."""
    layout = image_layout(input_shape)
    if layout is None:
        return None
    pixels = layout.to_hwc(row)
    if pixels.dtype != np.uint8:  # float images: shown by their own range
        low, high = float(pixels.min()), float(pixels.max())
        pixels = (pixels - low) / max(high - low, 1e-12)
    return data_url(png_bytes(pixels))


def decode_data_url(text: str) -> bytes:
    """The bytes of a base64 upload, with or without its ``data:...;base64,`` prefix."""
    _, comma, payload = text.partition(",") if text.startswith("data:") else ("", ",", text)
    if not comma:
        raise InvalidInputError("image", "a base64 data URL", "a data URL without a comma")
    try:
        return base64.b64decode(payload, validate=True)
    except ValueError:
        raise InvalidInputError("image", "base64-encoded file bytes", "text that is not base64") from None


__all__ = [
    "ACCEPTED_FORMATS",
    "MAX_UPLOAD_BYTES",
    "MAX_UPLOAD_PIXELS",
    "data_url",
    "decode_data_url",
    "decode_image",
    "describe_shape",
    "png_bytes",
    "require_extra",
    "thumbnail",
]
