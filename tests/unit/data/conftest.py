"""Fixtures of the data tests: tiny seeded IDX arrays and an isolated, empty cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_writers import IdxData, make_idx_arrays


@pytest.fixture
def idx_data() -> IdxData:
    """Tiny seeded IDX arrays."""
    return make_idx_arrays()


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point KNNSERVE_DATA at an empty temp folder so no test touches the real home cache."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("KNNSERVE_DATA", str(cache))
    return cache
