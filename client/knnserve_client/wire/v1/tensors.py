"""numpy arrays <-> knnserve.v1.Tensor: raw little-endian, row-major bytes with dtype and shape."""

from __future__ import annotations

import math

import numpy as np

from knnserve_client.wire.errors import InvalidInputError
from knnserve_client.wire.v1 import tensor_pb2

# Wire dtype -> numpy dtype, always little-endian whatever the host's byte order.
WIRE_DTYPES: dict[int, np.dtype] = {
    tensor_pb2.DTYPE_UINT8: np.dtype("<u1"),
    tensor_pb2.DTYPE_FLOAT32: np.dtype("<f4"),
    tensor_pb2.DTYPE_INT32: np.dtype("<i4"),
    tensor_pb2.DTYPE_INT64: np.dtype("<i8"),
}
# The wire dtypes a request's inputs may have (a model takes uint8 pixels or float32 vectors).
INPUT_WIRE_DTYPES: tuple[int, ...] = (tensor_pb2.DTYPE_UINT8, tensor_pb2.DTYPE_FLOAT32)
MAX_RANK = 8
# A bound on the product of the axes (zero-sized axes counted as 1) times the item size: numpy
# refuses larger shapes even when an axis of 0 leaves no data (e.g. [0, 2**62, 2**62]).
MAX_SHAPE_BYTES = 2**48


def dtype_name(wire_dtype: int) -> str:
    """The enum name of a wire dtype (``DTYPE_FLOAT32``), or the number when it is unknown."""
    try:
        return tensor_pb2.DType.Name(wire_dtype)
    except ValueError:
        return str(wire_dtype)


_WIRE_BY_KIND: dict[tuple[str, int], int] = {(d.kind, d.itemsize): wire for wire, d in WIRE_DTYPES.items()}


def wire_dtype_of(dtype: np.dtype) -> int:
    """The wire dtype of a numpy dtype of any byte order; raises InvalidInputError for others."""
    dtype = np.dtype(dtype)
    wire = _WIRE_BY_KIND.get((dtype.kind, dtype.itemsize))
    if wire is None:
        raise InvalidInputError("dtype", "uint8, float32, int32 or int64", str(dtype))
    return wire


def to_tensor(array: np.ndarray) -> tensor_pb2.Tensor:
    """Encode an array as a Tensor (little-endian, row-major); the array itself is not modified."""
    array = np.asarray(array)
    wire = wire_dtype_of(array.dtype)
    target = WIRE_DTYPES[wire]
    if array.dtype != target or not array.flags.c_contiguous:
        array = np.ascontiguousarray(array, dtype=target)
    return tensor_pb2.Tensor(dtype=wire, shape=array.shape, data=array.tobytes())


def tensor_nbytes(shape: tuple[int, ...], wire_dtype: int) -> int:
    """Bytes the data of a tensor of this shape and dtype holds."""
    return math.prod(shape) * WIRE_DTYPES[wire_dtype].itemsize


def from_tensor(
    tensor: tensor_pb2.Tensor, *, field: str = "inputs", allowed: tuple[int, ...] | None = None
) -> np.ndarray:
    """Decode a Tensor into a read-only numpy array sharing the message's bytes.

    Parameters
    ----------
    tensor : the message.
    field : the field name used in error messages (``inputs`` -> ``inputs.dtype``, ...).
    allowed : wire dtypes accepted; default: every dtype the wire defines.

    Raises InvalidInputError naming ``<field>.dtype``, ``<field>.shape`` or ``<field>.data``.
    """
    accepted = allowed if allowed is not None else tuple(WIRE_DTYPES)
    if tensor.dtype not in accepted:
        names = " or ".join(dtype_name(d) for d in accepted)
        raise InvalidInputError(f"{field}.dtype", names, dtype_name(tensor.dtype))
    shape = tuple(int(s) for s in tensor.shape)
    if len(shape) > MAX_RANK:
        raise InvalidInputError(f"{field}.shape", f"at most {MAX_RANK} axes", f"{len(shape)} axes")
    dtype = WIRE_DTYPES[tensor.dtype]
    if any(s < 0 for s in shape):
        raise InvalidInputError(f"{field}.shape", "sizes >= 0", list(shape))
    if math.prod(max(s, 1) for s in shape) * dtype.itemsize > MAX_SHAPE_BYTES:
        raise InvalidInputError(f"{field}.shape", f"axes whose product is at most {MAX_SHAPE_BYTES} bytes", list(shape))
    expected = tensor_nbytes(shape, tensor.dtype)
    if len(tensor.data) != expected:
        raise InvalidInputError(
            f"{field}.data",
            f"{expected} bytes (shape {list(shape)} of {dtype_name(tensor.dtype)}, {dtype.itemsize} bytes each)",
            f"{len(tensor.data)} bytes",
        )
    return np.frombuffer(tensor.data, dtype=dtype).reshape(shape)


__all__ = [
    "INPUT_WIRE_DTYPES",
    "WIRE_DTYPES",
    "dtype_name",
    "from_tensor",
    "tensor_nbytes",
    "to_tensor",
    "wire_dtype_of",
]
