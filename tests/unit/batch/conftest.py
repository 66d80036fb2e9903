"""Fixtures of the batch tests: one tiny bundle (k-NN and softmax heads) and its query images, per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch_helpers import Tiny, make_tiny


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    return make_tiny(tmp_path_factory.mktemp("batch-models"))


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run ``knnserve batch ARGS`` in this process: (exit status, stdout, stderr)."""
    from knnserve.cli import main

    def call(*args: str | Path) -> tuple[int, str, str]:
        try:
            status = main(["batch", "--no-progress", *map(str, args)])
        except SystemExit as exit_:
            status = int(exit_.code or 0)
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return call
