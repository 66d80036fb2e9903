"""The image tests need docker and the built image: checked once, before any bundle is trained for them."""

from __future__ import annotations

import pytest
from image_containers import require_image


@pytest.fixture(scope="session", autouse=True)
def image() -> None:
    """Skip (fail under KNNSERVE_REQUIRE_TOOLS) unless docker answers and the image is built."""
    require_image()
