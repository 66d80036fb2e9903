"""Reading files with errors that name the file: bytes (gunzipped when gzip), and numpy files without pickle."""

from __future__ import annotations

import gzip
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from knnserve.errors import DatasetError

GZIP_MAGIC = b"\x1f\x8b"


def read_bytes(path: Path) -> bytes:
    """Return the raw bytes of ``path``; a missing or unreadable file raises DatasetError."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DatasetError(f"{path}: expected a file, got a directory") from None
    except OSError as error:
        raise DatasetError(f"{path}: cannot read file ({error.strerror or error})") from error


def load_numpy(path: Path, expected: str) -> Any:
    """``np.load`` of a ``.npy`` or ``.npz`` file, never unpickling; a missing or unreadable file raises
    DatasetError naming the file and ``expected`` (what the caller reads there)."""
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DatasetError(f"{path}: expected {expected} ({error})") from error


def read_content(path: Path) -> bytes:
    """Return the content of ``path``, gunzipped when it starts with the gzip magic bytes."""
    raw = read_bytes(path)
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise DatasetError(f"{path}: expected a complete gzip stream, got a broken one ({error})") from error
