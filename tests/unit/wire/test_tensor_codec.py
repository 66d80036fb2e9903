"""The Tensor codec: little-endian row-major bytes, and errors that name the field."""

from __future__ import annotations

import numpy as np
import pytest

from knnserve.errors import InvalidInputError
from knnserve_client.wire.v1 import tensor_pb2
from knnserve_client.wire.v1.tensors import INPUT_WIRE_DTYPES, from_tensor, to_tensor


@pytest.mark.parametrize("dtype", ["uint8", "float32", "int32", "int64"])
def test_round_trip(dtype: str) -> None:
    x = (np.arange(24) * 3 - 7).reshape(2, 3, 4).astype(dtype)
    tensor = to_tensor(x)
    assert list(tensor.shape) == [2, 3, 4]
    back = from_tensor(tensor)
    assert back.dtype == np.dtype(dtype).newbyteorder("<") and back.shape == x.shape
    np.testing.assert_array_equal(back, x)


def test_bytes_are_little_endian_row_major_whatever_the_source() -> None:
    x = np.array([[1.5, -2.0], [3.25, 4.0]], dtype=">f4")  # big-endian source
    tensor = to_tensor(x)
    assert tensor.dtype == tensor_pb2.DTYPE_FLOAT32
    assert tensor.data == np.array([1.5, -2.0, 3.25, 4.0], dtype="<f4").tobytes()
    fortran = np.asfortranarray(np.arange(6, dtype=np.uint8).reshape(2, 3))
    assert to_tensor(fortran).data == bytes([0, 1, 2, 3, 4, 5])


def test_decoded_array_shares_the_message_bytes_read_only() -> None:
    back = from_tensor(to_tensor(np.ones((2, 2), np.float32)))
    assert not back.flags.writeable


@pytest.mark.parametrize(
    ("tensor", "field", "text"),
    [
        (tensor_pb2.Tensor(dtype=tensor_pb2.DTYPE_INT32, shape=[1], data=bytes(4)), "inputs.dtype", "DTYPE_UINT8 or DTYPE_FLOAT32"),
        (tensor_pb2.Tensor(shape=[1], data=bytes(1)), "inputs.dtype", "DTYPE_UNSPECIFIED"),
        (tensor_pb2.Tensor(dtype=99, shape=[1], data=bytes(1)), "inputs.dtype", "99"),
        (tensor_pb2.Tensor(dtype=tensor_pb2.DTYPE_FLOAT32, shape=[2, 3], data=bytes(23)), "inputs.data", "24 bytes"),
        (tensor_pb2.Tensor(dtype=tensor_pb2.DTYPE_UINT8, shape=[2, -3], data=b""), "inputs.shape", "sizes >= 0"),
        (tensor_pb2.Tensor(dtype=tensor_pb2.DTYPE_UINT8, shape=[1] * 9, data=bytes(1)), "inputs.shape", "at most 8 axes"),
    ],
)
def test_invalid_tensors(tensor: tensor_pb2.Tensor, field: str, text: str) -> None:
    with pytest.raises(InvalidInputError) as failure:
        from_tensor(tensor, field="inputs", allowed=INPUT_WIRE_DTYPES)
    assert failure.value.field == field
    assert text in str(failure.value)


def test_unsupported_numpy_dtype_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="dtype"):
        to_tensor(np.zeros(3, dtype=np.float64))


@pytest.mark.parametrize("shape", [[0, 2**62, 2**62], [0, 2**31 - 1, 2**31 - 1], [2**40, 2**40]])
def test_shapes_whose_product_overflows_are_invalid_input_not_a_crash(shape: list[int]) -> None:
    tensor = tensor_pb2.Tensor(dtype=tensor_pb2.DTYPE_FLOAT32, shape=shape, data=b"")
    with pytest.raises(InvalidInputError, match=r"inputs\.shape"):
        from_tensor(tensor, field="inputs")
