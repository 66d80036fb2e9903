"""A minimal ONNX model writer: the few protobuf messages the kernels' one-node-chain graphs need.

onnxruntime takes a serialized ``ModelProto``; writing those bytes here (protobuf wire format,
field numbers from onnx/onnx.proto) spares a dependency on the ``onnx`` package for graphs of
five nodes. Only what the kernels use is written: tensor inputs/outputs with named or fixed
dimensions, raw-data initializers, nodes with integer attributes, one default-domain opset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

# onnx.TensorProto.DataType values for the numpy dtypes the kernels use.
ELEM_TYPES: dict[np.dtype, int] = {
    np.dtype(np.float32): 1,
    np.dtype(np.uint8): 2,
    np.dtype(np.int8): 3,
    np.dtype(np.int32): 6,
    np.dtype(np.int64): 7,
}
IR_VERSION = 8  # supported by every onnxruntime >= 1.10
OPSET = 13  # TopK (k as an input, ties to the lower index), MatMulInteger, Gather, Add, Sub
_ATTRIBUTE_INT = 2  # onnx.AttributeProto.AttributeType.INT

Dim = int | str


def _varint(value: int) -> bytes:
    if value < 0:
        raise ValueError("negative varints are never written here (use positive axes)")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _int_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _bytes_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _str_field(number: int, text: str) -> bytes:
    return _bytes_field(number, text.encode())


@dataclass(frozen=True)
class ValueInfo:
    """A graph input or output: name, numpy dtype and shape (ints fixed, strings symbolic)."""

    name: str
    dtype: type | np.dtype
    shape: Sequence[Dim]

    def encode(self) -> bytes:
        """ValueInfoProto bytes."""
        dims = b"".join(
            _bytes_field(1, _int_field(1, dim) if isinstance(dim, int) else _str_field(2, dim)) for dim in self.shape
        )
        tensor_type = _int_field(1, ELEM_TYPES[np.dtype(self.dtype)]) + _bytes_field(2, dims)
        return _str_field(1, self.name) + _bytes_field(2, _bytes_field(1, tensor_type))


@dataclass(frozen=True)
class Node:
    """One operator: type, input and output names, integer attributes."""

    op_type: str
    inputs: Sequence[str]
    outputs: Sequence[str]
    attributes: dict[str, int] = field(default_factory=dict)

    def encode(self) -> bytes:
        """NodeProto bytes."""
        out = b"".join(_str_field(1, name) for name in self.inputs)
        out += b"".join(_str_field(2, name) for name in self.outputs)
        out += _str_field(4, self.op_type)
        for name, value in self.attributes.items():
            out += _bytes_field(5, _str_field(1, name) + _int_field(3, value) + _int_field(20, _ATTRIBUTE_INT))
        return out


# A message built as a list of pieces joined once at the end: a large initializer's data (tens of MB
# for a kernel's base) is then copied once, into the result, rather than once per enclosing message
# (joined message by message it was copied six times: 0.34-0.55 s for the 47 MB Fashion-MNIST base on
# the shared, busy 2-core machine, 0.035-0.045 s now; a fixed cost of every batch job and server load).
Pieces = list[bytes | memoryview]


def _length(pieces: Pieces) -> int:
    return sum(piece.nbytes if isinstance(piece, memoryview) else len(piece) for piece in pieces)


def _pieces_field(number: int, pieces: Pieces) -> Pieces:
    return [_varint(number << 3 | 2) + _varint(_length(pieces)), *pieces]


def _initializer(name: str, array: np.ndarray) -> Pieces:
    # raw_data is little-endian, as numpy's on every platform knnserve runs on (no copy there).
    array = np.ascontiguousarray(array.astype(array.dtype.newbyteorder("<"), copy=False))
    dims = b"".join(_varint(int(d)) for d in array.shape)
    head = _bytes_field(1, dims) if array.shape else b""  # packed repeated int64
    head += _int_field(2, ELEM_TYPES[array.dtype]) + _str_field(8, name)
    return [head, *_pieces_field(9, [memoryview(array).cast("B")])]


def model_bytes(
    nodes: Sequence[Node],
    inputs: Sequence[ValueInfo],
    outputs: Sequence[ValueInfo],
    initializers: dict[str, np.ndarray] | None = None,
    name: str = "knnserve",
) -> bytes:
    """A serialized ModelProto with one graph, for ``onnxruntime.InferenceSession``."""
    graph: Pieces = [b"".join(_bytes_field(1, node.encode()) for node in nodes), _str_field(2, name)]
    for key, value in (initializers or {}).items():
        graph += _pieces_field(5, _initializer(key, value))
    graph.append(b"".join(_bytes_field(11, value.encode()) for value in inputs))
    graph.append(b"".join(_bytes_field(12, value.encode()) for value in outputs))
    opset = _str_field(1, "") + _int_field(2, OPSET)
    return b"".join([_int_field(1, IR_VERSION) + _str_field(2, "knnserve"), *_pieces_field(7, graph), _bytes_field(8, opset)])


__all__ = ["ELEM_TYPES", "Node", "ValueInfo", "model_bytes"]
