"""The dataset behind the page: test rows to browse, training rows to show as neighbours, and whether it fits a model.

A bundle's index holds every training row in order (``KNNModel.fit`` adds ``x_train`` whole; the
validation split used to choose the linear head's and the CNN's settings is a subset of those rows,
not removed from the index), so neighbour id ``i`` is training row ``i``. The page checks that the
dataset is the one the model was trained on before it says so: the checksum the bundle records when
the manifest is readable, else name, training-row count and image shape; and each answer's neighbour
labels must equal the dataset's labels of those ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from knnserve.data import load_dataset
from knnserve.data.dataset import Dataset
from knnserve.errors import InvalidInputError
from knnserve.ui.images import thumbnail
from knnserve_client.wire.model_info import ModelInfo


@dataclass(frozen=True)
class Match:
    """Whether the dataset is the model's: ``ok``, and a sentence saying why or why not."""

    ok: bool
    reason: str


class DatasetView:
    """Read-only access to one loaded dataset for the page."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    @classmethod
    def load(cls, name: str | None = None, data_dir: Path | None = None) -> DatasetView:
        """Load a registered dataset (never downloading) or a folder."""
        return cls(load_dataset(name, data_dir=data_dir, download=False))

    @property
    def name(self) -> str:
        """The dataset's name."""
        return self.dataset.name

    @property
    def n_test(self) -> int:
        """Rows in the test split."""
        return int(self.dataset.x_test.shape[0])

    def matches(self, info: ModelInfo, manifest_checksum: str | None) -> Match:
        """Whether ``info``'s index was built on this dataset's training split (so ids are training rows)."""
        data = self.dataset
        shape = tuple(data.image_shape)
        if tuple(info.input_shape) != shape:
            return Match(False, f"the dataset's images are {shape}, the model takes {tuple(info.input_shape)}")
        if manifest_checksum:
            if manifest_checksum == data.checksum:
                return Match(True, f"{data.name}: the checksum the bundle records")
            return Match(False, f"the bundle was trained on data with another checksum than {data.name} ({data.source})")
        if info.dataset and info.dataset != data.name:
            return Match(False, f"the model was trained on {info.dataset!r}, the page has {data.name!r}")
        if info.index.ntotal != data.x_train.shape[0]:
            return Match(False, f"the index holds {info.index.ntotal} vectors, {data.name} has {data.x_train.shape[0]} training rows")
        return Match(True, f"{data.name}: same name, image shape and training-row count (no manifest to compare checksums)")

    def test_row(self, row: int) -> tuple[np.ndarray, int]:
        """Test row ``row`` and its true class index."""
        if not 0 <= row < self.n_test:
            raise InvalidInputError("row", f"a test row between 0 and {self.n_test - 1}", row)
        return self.dataset.x_test[row], int(self.dataset.y_test[row])

    def test_rows(self, rows: np.ndarray) -> np.ndarray:
        """Several test rows, as one array (for classifying the split)."""
        return self.dataset.x_test[rows]

    @property
    def y_test(self) -> np.ndarray:
        """True class of every test row."""
        return self.dataset.y_test

    def train_labels(self, ids: np.ndarray) -> np.ndarray:
        """Labels of training rows ``ids`` (-1 where an id is -1)."""
        ids = np.asarray(ids, dtype=np.int64)
        safe = np.clip(ids, 0, max(self.dataset.y_train.shape[0] - 1, 0))
        return np.where(ids >= 0, self.dataset.y_train[safe], -1)

    def train_thumbnail(self, row: int) -> str | None:
        """A data URL of training row ``row``; None for a missing neighbour (-1) or a non-image row."""
        if not 0 <= row < self.dataset.x_train.shape[0]:
            return None
        return thumbnail(self.dataset.x_train[row], self.dataset.image_shape)

    def test_thumbnail(self, row: int) -> str | None:
        """A data URL of test row ``row``."""
        image, _ = self.test_row(row)
        return thumbnail(image, self.dataset.image_shape)

    def test_page(self, offset: int, limit: int, label: int | None = None) -> tuple[list[int], int]:
        """Test rows shown on one page of the browser (optionally of one true class) and how many there are."""
        if offset < 0 or limit < 1:
            raise InvalidInputError("offset", "offset >= 0 and limit >= 1", f"offset {offset}, limit {limit}")
        rows = np.arange(self.n_test) if label is None else np.flatnonzero(self.dataset.y_test == label)
        return [int(r) for r in rows[offset: offset + limit]], int(rows.size)


__all__ = ["DatasetView", "Match"]
