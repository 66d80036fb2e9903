"""The one mapping between exceptions and gRPC status codes (both ways), and the configs' own validation."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from knnserve.dataplane.config import BatchConfig
from knnserve.answers import top_classes
from knnserve.errors import BundleError, InvalidInputError
from knnserve.service.config import ServeConfig, ThreadConfig
from knnserve_client.wire import status
from knnserve_client.wire.errors import (
    DeadlineExpiredError,
    ModelNotFoundError,
    ModelsNotLoadedError,
    RequestTooLargeError,
    TokenRejectedError,
)
from knnserve_client.wire.status import GENERIC_INTERNAL_MESSAGE, status_for


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidInputError("inputs.shape", "(n, 784)", "(2, 3)"), grpc.StatusCode.INVALID_ARGUMENT),
        (ModelNotFoundError("model 'x' is not served"), grpc.StatusCode.NOT_FOUND),
        (ModelsNotLoadedError("loading"), grpc.StatusCode.UNAVAILABLE),
        (TokenRejectedError("missing bearer token"), grpc.StatusCode.UNAUTHENTICATED),
        (RequestTooLargeError("too many rows"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (DeadlineExpiredError("late"), grpc.StatusCode.DEADLINE_EXCEEDED),
    ],
)
def test_known_errors_keep_their_message(error: Exception, code: grpc.StatusCode) -> None:
    mapped = status_for(error)
    assert mapped.code == code and mapped.message == str(error) and not mapped.log_traceback


@pytest.mark.parametrize("error", [RuntimeError("faiss says no"), KeyError("x"), BundleError("/secret/path: corrupt"), AssertionError()])
def test_everything_else_is_internal_and_generic(error: Exception) -> None:
    mapped = status_for(error)
    assert mapped.code == grpc.StatusCode.INTERNAL
    assert mapped.message == GENERIC_INTERNAL_MESSAGE and mapped.log_traceback


class _Call(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "what the server said"

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("x-request-id", "abc123"),)


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, status.InvalidArgumentError),
        (grpc.StatusCode.NOT_FOUND, status.NotFoundError),
        (grpc.StatusCode.UNAVAILABLE, status.UnavailableError),
        (grpc.StatusCode.UNAUTHENTICATED, status.UnauthenticatedError),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, status.TooLargeError),
        (grpc.StatusCode.DEADLINE_EXCEEDED, status.DeadlineExceededError),
        (grpc.StatusCode.INTERNAL, status.ServerError),
        (grpc.StatusCode.UNKNOWN, status.ServerError),
    ],
)
def test_client_errors_keep_code_details_and_request_id(code: grpc.StatusCode, kind: type) -> None:
    error = status.from_rpc_error(_Call(code))
    assert type(error) is kind and error.code == code and error.details == "what the server said"
    assert error.request_id == "abc123" and "abc123" in str(error)


def test_every_server_error_maps_to_the_client_error_of_its_code() -> None:
    for server_error, client_error in ((InvalidInputError("f", "x"), status.InvalidArgumentError),
                                       (ModelNotFoundError("m"), status.NotFoundError),
                                       (TokenRejectedError("t"), status.UnauthenticatedError)):
        assert type(status.from_rpc_error(_Call(status_for(server_error).code))) is client_error


def test_invalid_input_message_names_field_and_expectation() -> None:
    assert status_for(InvalidInputError("k", "an integer between 1 and 10", 0)).message == "k: expected an integer between 1 and 10, got 0"


def test_thread_sizing_does_not_oversubscribe() -> None:
    # One search at a time per model, on every core; the pool for blocking work (writes) sized to the cores:
    # calls in flight are tasks on the event loop, not threads.
    assert ThreadConfig().resolve(batching=True, cores=2) == (2, 2)
    assert ThreadConfig().resolve(batching=True, cores=16) == (16, 16)
    assert ThreadConfig().resolve(batching=False, cores=4) == (1, 4)  # every pool thread searches: 1 OpenMP thread each
    assert ThreadConfig(faiss_threads=3, grpc_workers=5).resolve(batching=True, cores=2) == (3, 5)


def test_config_validation() -> None:
    with pytest.raises(InvalidInputError, match="exactly one"):
        ServeConfig()
    with pytest.raises(ValueError, match="max_rows"):
        BatchConfig(max_rows=0)
    with pytest.raises(ValueError, match="token"):
        ServeConfig(model_dir=".", token="  ")


def test_top_classes_order_and_ties() -> None:
    scores = np.array([[0.2, 0.5, 0.3, 0.0], [0.4, 0.1, 0.4, 0.1]], np.float32)
    classes, top = top_classes(scores, 3)
    np.testing.assert_array_equal(classes, [[1, 2, 0], [0, 2, 1]])
    np.testing.assert_allclose(top, [[0.5, 0.3, 0.2], [0.4, 0.4, 0.1]])
    assert classes.dtype == np.int32 and top.dtype == np.float32
