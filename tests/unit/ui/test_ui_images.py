"""Decoding uploads to a model's input, PNG thumbnails, data URLs: no server, no browser."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from knnserve.errors import InvalidInputError
from knnserve.images import image_layout
from knnserve.ui.images import (
    MAX_UPLOAD_BYTES,
    data_url,
    decode_data_url,
    decode_image,
    describe_shape,
    png_bytes,
    thumbnail,
)


def _encode(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def test_png_round_trip_is_exact_for_grey_and_colour(rng: np.random.Generator) -> None:
    grey = rng.integers(0, 256, size=(28, 28), dtype=np.uint8)
    assert np.array_equal(decode_image(png_bytes(grey), (28, 28)), grey)
    colour = rng.integers(0, 256, size=(8, 6, 3), dtype=np.uint8)
    assert np.array_equal(decode_image(png_bytes(colour), (8, 6, 3)), colour)
    assert decode_image(png_bytes(grey), (28, 28, 1)).shape == (28, 28, 1)


def test_colour_upload_becomes_grey_for_a_grey_model() -> None:
    colour = np.zeros((4, 4, 3), dtype=np.uint8)
    colour[..., 0] = 255  # pure red: ITU-R 601 luma 76
    assert np.all(decode_image(_encode(colour), (4, 4)) == 76)


def test_jpeg_is_accepted() -> None:
    flat = np.full((16, 16), 128, dtype=np.uint8)
    decoded = decode_image(_encode(flat, "JPEG"), (16, 16))
    assert np.abs(decoded.astype(int) - 128).max() <= 2


def test_wrong_size_is_refused_unless_resized() -> None:
    big = np.zeros((56, 56), dtype=np.uint8)
    big[:28, :28] = 200
    with pytest.raises(InvalidInputError, match=r"28x28 grey images .*got a 56x56 image"):
        decode_image(png_bytes(big), (28, 28))
    small = decode_image(png_bytes(big), (28, 28), resize=True)
    assert small.shape == (28, 28)
    assert small[:14, :14].min() == 200 and small[14:, 14:].max() == 0  # area averaging keeps the quadrants


@pytest.mark.parametrize("data", [b"", b"hello, not an image", b"GIF89a" + bytes(20)])
def test_not_an_image_is_a_readable_error(data: bytes) -> None:
    with pytest.raises(InvalidInputError, match="image: expected a PNG or JPEG file"):
        decode_image(data, (28, 28))


def test_gif_is_refused_even_when_pillow_reads_it() -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(buffer, format="GIF")
    with pytest.raises(InvalidInputError, match="PNG or JPEG"):
        decode_image(buffer.getvalue(), (28, 28))


def test_truncated_png_is_refused() -> None:
    data = png_bytes(np.arange(784, dtype=np.uint8).reshape(28, 28))
    with pytest.raises(InvalidInputError, match="image: expected"):
        decode_image(data[: len(data) // 2], (28, 28))


def test_oversized_uploads_are_refused_before_decoding() -> None:
    with pytest.raises(InvalidInputError, match="at most 5 MiB"):
        decode_image(b"\x89PNG" + bytes(MAX_UPLOAD_BYTES), (28, 28))
    bomb = _encode(np.zeros((4100, 4100), dtype=np.uint8))  # a small file that decodes to 16.8 M pixels
    assert len(bomb) < MAX_UPLOAD_BYTES
    with pytest.raises(InvalidInputError, match="at most 16777216 pixels, got 4100x4100"):
        decode_image(bomb, (28, 28), resize=True)


def test_vector_models_take_no_images() -> None:
    assert image_layout((16,)) is None
    assert describe_shape((16,)) == "vectors of shape (16,)"
    with pytest.raises(InvalidInputError, match="vectors of shape"):
        decode_image(png_bytes(np.zeros((4, 4), dtype=np.uint8)), (16,))
    assert thumbnail(np.zeros(16, dtype=np.float32), (16,)) is None


def test_png_bytes_scales_floats_and_repeats_pixels() -> None:
    image = Image.open(io.BytesIO(png_bytes(np.array([[0.0, 1.0]]), scale=3)))
    assert image.size == (6, 3) and image.mode == "L"
    assert np.array_equal(np.asarray(image)[0], [0, 0, 0, 255, 255, 255])
    with pytest.raises(InvalidInputError, match="shape"):
        png_bytes(np.zeros((2, 2, 2)))


def test_data_urls_round_trip() -> None:
    png = png_bytes(np.eye(4, dtype=np.uint8) * 255)
    url = data_url(png)
    assert url.startswith("data:image/png;base64,")
    assert decode_data_url(url) == png
    assert decode_data_url(base64.b64encode(png).decode()) == png
    with pytest.raises(InvalidInputError, match="not base64"):
        decode_data_url("data:image/png;base64,@@@")
    with pytest.raises(InvalidInputError, match="without a comma"):
        decode_data_url("data:image/png;base64")


def test_thumbnail_of_a_row_is_a_png_of_its_shape(rng: np.random.Generator) -> None:
    row = rng.integers(0, 256, size=(12, 12), dtype=np.uint8)
    url = thumbnail(row, (12, 12))
    assert url is not None
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(decode_data_url(url)))), row)


def test_a_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from knnserve.errors import MissingExtraError
    from knnserve.ui.images import require_extra

    require_extra()
    monkeypatch.setitem(sys.modules, "PIL", None)  # import PIL now raises ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'knnserve\[ui\]'"):
        require_extra()


def test_serving_and_the_cli_never_load_the_pages_imaging() -> None:
    import subprocess
    import sys

    code = ("import sys, knnserve.service.server, knnserve.cli, knnserve_client; knnserve.cli.build_parser(); "
            "print(sorted(m for m in ('PIL', 'matplotlib', 'selenium', 'knnserve.ui.app') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"
