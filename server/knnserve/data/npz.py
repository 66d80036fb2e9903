"""Datasets stored as one ``.npz`` with x_train, y_train, x_test, y_test (and optional class_names)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from knnserve.data.arrays import Splits, as_labels, check_pair, check_same_image_shape
from knnserve.data.files import load_numpy
from knnserve.errors import DatasetError

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def read_npz(path: str | Path) -> Splits:
    """Read a dataset ``.npz`` (never unpickling); errors name the file and the key."""
    path = Path(path)
    archive = load_numpy(path, "an .npz archive written by numpy.savez")
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DatasetError(f"{path}: expected an .npz archive of named arrays, got a single .npy array")
    with archive:
        missing = [key for key in NPZ_KEYS if key not in archive.files]
        if missing:
            raise DatasetError(
                f"{path}: missing array(s) {', '.join(missing)}; expected keys {', '.join(NPZ_KEYS)} "
                f"(and optionally class_names), got {', '.join(archive.files) or 'none'}"
            )
        arrays = {key: _get(archive, key, path) for key in NPZ_KEYS}
        class_names = _class_names(archive, path) if "class_names" in archive.files else ()
    n_classes = len(class_names) if class_names else None
    y_train = as_labels(arrays["y_train"], f"{path}[y_train]", n_classes)
    y_test = as_labels(arrays["y_test"], f"{path}[y_test]", n_classes)
    check_pair(arrays["x_train"], y_train, f"{path}[x_train]", f"{path}[y_train]")
    check_pair(arrays["x_test"], y_test, f"{path}[x_test]", f"{path}[y_test]")
    check_same_image_shape(arrays["x_train"], arrays["x_test"], f"{path}[x_test]")
    return Splits(arrays["x_train"], y_train, arrays["x_test"], y_test, class_names=class_names)


def _get(archive: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    try:
        return archive[key]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        # Object arrays land here: allow_pickle=False refuses them.
        raise DatasetError(f"{path}[{key}]: expected a plain numeric array ({error})") from error


def _class_names(archive: np.lib.npyio.NpzFile, path: Path) -> tuple[str, ...]:
    names = _get(archive, "class_names", path)
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise DatasetError(
            f"{path}[class_names]: expected a 1-D array of strings, got dtype {names.dtype} "
            f"and shape {names.shape}"
        )
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names.tolist())
