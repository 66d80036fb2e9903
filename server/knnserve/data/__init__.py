"""Datasets: IDX, CIFAR binary and .npz readers, a registry with checksums, cache and download."""

from knnserve.data.dataset import Dataset, array_checksum
from knnserve.data.fetch import fetch_dataset
from knnserve.data.idx import read_idx
from knnserve.data.inputs import read_input_array
from knnserve.data.load import load_dataset, load_folder
from knnserve.data.registry import DEFAULT_DATASET, list_datasets
from knnserve.data.resolve import default_cache_dir
from knnserve.data.split import validation_split

__all__ = [
    "DEFAULT_DATASET",
    "Dataset",
    "array_checksum",
    "default_cache_dir",
    "fetch_dataset",
    "list_datasets",
    "load_dataset",
    "load_folder",
    "read_idx",
    "read_input_array",
    "validation_split",
]
