"""The changes an online model logs: added examples, removed ids, the seal of a snapshot, as log payloads
(JSON head + raw array bytes).

Payload layout: u32 length of a JSON head, the head (UTF-8), then for an add the vectors' bytes
(row-major, little-endian, the head's dtype and shape). No pickle: the log is data a server reads
back at every start.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import numpy as np

_HEAD_LENGTH = struct.Struct("<I")
_DTYPES = {"uint8": np.dtype(np.uint8), "float32": np.dtype("<f4")}


class RecordError(ValueError):
    """A payload that checksummed right but does not decode (written by an incompatible version)."""


@dataclass(frozen=True, eq=False)
class Added:
    """Examples added: vectors in the index's space, their class names, and the ids they were given."""

    first_id: int
    vectors: np.ndarray  # (n, dim), uint8 when every value is a byte (raw pixels), else float32
    labels: tuple[str, ...]
    request_id: str = ""

    @property
    def ids(self) -> np.ndarray:
        """The ids given to the rows: first_id, first_id + 1, ..."""
        return np.arange(self.first_id, self.first_id + self.vectors.shape[0], dtype=np.int64)


@dataclass(frozen=True, eq=False)
class Removed:
    """Ids removed (training rows or added ones)."""

    ids: np.ndarray  # int64 (n,)
    request_id: str = ""


@dataclass(frozen=True)
class Sealed:
    """The log's last record: a snapshot folded it into ``target`` (the next version); no writes follow."""

    target: str


Change = Added | Removed | Sealed


def compact_vectors(vectors: np.ndarray) -> np.ndarray:
    """``vectors`` as uint8 when every value is an integer in 0..255 (exact, 4x smaller), else float32."""
    with np.errstate(invalid="ignore"):
        as_bytes = vectors.astype(np.uint8)
    return as_bytes if np.array_equal(as_bytes, vectors) else np.ascontiguousarray(vectors, dtype=np.float32)


def encode(change: Change) -> bytes:
    """The log payload of one change."""
    if isinstance(change, Added):
        vectors = change.vectors
        head = {"kind": "add", "request_id": change.request_id, "first_id": change.first_id,
                "labels": list(change.labels), "dtype": vectors.dtype.name, "shape": list(vectors.shape)}
        body = np.ascontiguousarray(vectors, dtype=_DTYPES[vectors.dtype.name]).tobytes()
    elif isinstance(change, Removed):
        head = {"kind": "remove", "request_id": change.request_id, "ids": [int(i) for i in change.ids]}
        body = b""
    else:
        head, body = {"kind": "seal", "target": change.target}, b""
    text = json.dumps(head, separators=(",", ":")).encode()
    return _HEAD_LENGTH.pack(len(text)) + text + body


def decode(payload: bytes) -> Change:
    """The change a payload holds; RecordError when it does not decode."""
    try:
        (length,) = _HEAD_LENGTH.unpack_from(payload, 0)
        start = _HEAD_LENGTH.size
        head = json.loads(payload[start : start + length])
        body = memoryview(payload)[start + length :]
        if head["kind"] == "add":
            dtype = _DTYPES[head["dtype"]]
            rows, dim = (int(s) for s in head["shape"])
            vectors = np.frombuffer(body, dtype=dtype).reshape(rows, dim).astype(dtype.newbyteorder("="))
            labels = tuple(str(label) for label in head["labels"])
            if len(labels) != rows:
                raise ValueError(f"{len(labels)} labels for {rows} rows")
            return Added(int(head["first_id"]), vectors, labels, str(head["request_id"]))
        if head["kind"] == "remove":
            return Removed(np.asarray(head["ids"], dtype=np.int64).reshape(-1), str(head["request_id"]))
        if head["kind"] == "seal":
            return Sealed(str(head["target"]))
        raise ValueError(f"unknown kind {head['kind']!r}")
    except (KeyError, ValueError, TypeError, struct.error) as exc:
        raise RecordError(f"a log record that does not decode: {exc}") from exc


__all__ = ["Added", "Change", "RecordError", "Removed", "Sealed", "compact_vectors", "decode", "encode"]
