"""Client: owns a channel to a knnserve server; numpy in, small result types out, its own exceptions."""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc
import numpy as np

from knnserve.errors import InvalidInputError
from knnserve.v1 import knnserve_pb2 as pb
from knnserve.v1 import knnserve_pb2_grpc
from knnserve_client.channel import DEFAULT_MAX_MESSAGE_BYTES, RetryPolicy, make_channel
from knnserve_client.errors import from_rpc_error
from knnserve_client.results import (
    ClassifyResult,
    ModelInfo,
    Neighbors,
    SearchResult,
    ServerLimits,
)
from knnserve_client.tensors import to_tensor

T = TypeVar("T")

WEIGHTS = {"uniform": pb.WEIGHTING_UNIFORM, "distance": pb.WEIGHTING_DISTANCE}
TIE_BREAKS = {"nearest": pb.TIE_BREAK_NEAREST, "lowest": pb.TIE_BREAK_LOWEST}
HEADS = {"knn": pb.HEAD_KNN, "linear": pb.HEAD_LINEAR}
# Room for everything in a request besides the tensor bytes (model name, options, framing).
REQUEST_OVERHEAD_BYTES = 4096
# Unary chunk requests kept in flight at once for a large input.
CHUNK_WINDOW = 4


def _enum(table: dict[str, int], value: str | None, field: str) -> int | None:
    if value is None:
        return None
    if value not in table:
        raise InvalidInputError(field, f"one of {', '.join(table)}", repr(value))
    return table[value]


def as_input_array(x: np.ndarray) -> np.ndarray:
    """The array as sent: uint8 kept, other floating dtypes converted to float32."""
    x = np.asarray(x)
    if x.dtype == np.uint8 or x.dtype == np.float32:
        return x
    if x.dtype.kind == "f":
        return x.astype(np.float32)
    raise InvalidInputError("x.dtype", "uint8 or a floating dtype (sent as float32)", str(x.dtype))


class Client:
    """A knnserve client that owns its channel; use it as a context manager or call :meth:`close`.

    Parameters
    ----------
    target : ``HOST:PORT`` of the server.
    timeout : default deadline of each call, in seconds (each chunk of a large input gets its own).
    tls : False for plaintext, True for TLS with the system roots, or a PEM root certificate
        (path or bytes) for a private CA or a self-signed server.
    token : bearer token sent as ``authorization: Bearer <token>`` on every call.
    tls_server_name : override the name checked against the server certificate.
    max_message_bytes : the largest request this client sends; larger inputs are split, also
        respecting the limits the server announces.
    retry : gRPC retry policy; only UNAVAILABLE is retried.
    """

    def __init__(
        self,
        target: str,
        *,
        timeout: float = 30.0,
        tls: bool | str | Path | bytes = False,
        token: str | None = None,
        tls_server_name: str | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        retry: RetryPolicy = RetryPolicy(),
    ) -> None:
        self.target = target
        self.timeout = timeout
        self.max_message_bytes = max_message_bytes
        self._metadata: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {token}"),) if token else ()
        self._channel = make_channel(
            target, tls=tls, tls_server_name=tls_server_name, max_message_bytes=max_message_bytes, retry=retry
        )
        self._stub = knnserve_pb2_grpc.KnnServeStub(self._channel)
        self._limits: ServerLimits | None = None
        self._lock = threading.Lock()

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- models -------------------------------------------------------------------------------

    def models(self, *, timeout: float | None = None) -> list[ModelInfo]:
        """Every served model, at its newest version, sorted by name."""
        response = self._call(self._stub.ListModels, pb.ListModelsRequest(), timeout)
        self._remember_limits(response.limits)
        return [ModelInfo.from_proto(m) for m in response.models]

    def model(self, name: str, version: int | None = None, *, timeout: float | None = None) -> ModelInfo:
        """One model at one version (default: its newest)."""
        response = self._call(self._stub.GetModel, pb.GetModelRequest(name=name, version=version), timeout)
        self._remember_limits(response.limits)
        return ModelInfo.from_proto(response.model)

    def limits(self, *, timeout: float | None = None) -> ServerLimits:
        """The server's per-request limits (asked once, then cached)."""
        if self._limits is None:
            self.models(timeout=timeout)
        assert self._limits is not None
        return self._limits

    # -- inference ----------------------------------------------------------------------------

    def classify(
        self,
        model: str,
        x: np.ndarray,
        *,
        version: int | None = None,
        heads: Sequence[str] | None = None,
        k: int | None = None,
        weights: str | None = None,
        tie_break: str | None = None,
        nprobe: int | None = None,
        ef_search: int | None = None,
        top_n: int | None = None,
        return_neighbors: bool = False,
        timeout: float | None = None,
    ) -> ClassifyResult:
        """Classify rows ``x`` (n, *input_shape) or (n, dim), uint8 or float.

        Unset options take the model's defaults. Inputs over the request limits are sent as
        several requests (a few in flight at once) and the results joined in row order; all
        chunks are pinned to the version that answered the first.
        """
        template = self.classify_request(
            model,
            version=version,
            heads=heads,
            k=k,
            weights=weights,
            tie_break=tie_break,
            nprobe=nprobe,
            ef_search=ef_search,
            top_n=top_n,
            return_neighbors=return_neighbors,
        )
        parts = self._chunked(
            self._stub.Classify, template, x, timeout, lambda response: ClassifyResult.from_proto(response)
        )
        return ClassifyResult.concat(parts)

    def search(
        self,
        model: str,
        x: np.ndarray,
        *,
        version: int | None = None,
        k: int | None = None,
        nprobe: int | None = None,
        ef_search: int | None = None,
        timeout: float | None = None,
    ) -> SearchResult:
        """The k nearest training vectors of each row: ids, distances (true scale) and labels."""
        template = pb.SearchRequest(model=model, version=version, k=k, nprobe=nprobe, ef_search=ef_search)
        parts = self._chunked(self._stub.Search, template, x, timeout, lambda response: response)
        neighbors = Neighbors.concat([Neighbors.from_proto(p.neighbors) for p in parts])
        return SearchResult(model=parts[0].model, version=parts[0].version, neighbors=neighbors)

    def classify_batches(
        self,
        model: str,
        batches: Iterable[np.ndarray],
        *,
        version: int | None = None,
        heads: Sequence[str] | None = None,
        k: int | None = None,
        weights: str | None = None,
        tie_break: str | None = None,
        nprobe: int | None = None,
        ef_search: int | None = None,
        top_n: int | None = None,
        timeout: float | None = None,
    ) -> Iterator[ClassifyResult]:
        """Batch jobs over one ClassifyStream: yields one result per input batch, in order.

        Each batch is split under the request limits and re-joined. ``timeout`` bounds the
        whole stream (default: none). The stream is not retried once it has started.
        """
        template = self.classify_request(
            model,
            version=version,
            heads=heads,
            k=k,
            weights=weights,
            tie_break=tie_break,
            nprobe=nprobe,
            ef_search=ef_search,
            top_n=top_n,
        )
        plan: collections.deque[tuple[int, bool]] = collections.deque()  # (batch index, last chunk of it)
        plan_lock = threading.Lock()

        def requests() -> Iterator[pb.ClassifyRequest]:
            for number, batch in enumerate(batches):
                array = as_input_array(batch)
                chunks = self._split(array, template)
                for position, chunk in enumerate(chunks):
                    request = pb.ClassifyRequest()
                    request.CopyFrom(template)
                    request.inputs.CopyFrom(to_tensor(chunk))
                    request.tag = f"{number}:{position}"
                    with plan_lock:
                        plan.append((number, position == len(chunks) - 1))
                    yield request

        try:
            responses = self._stub.ClassifyStream(requests(), timeout=timeout, metadata=self._metadata)
            pending: list[ClassifyResult] = []
            for response in responses:
                with plan_lock:
                    _, last = plan.popleft()
                pending.append(ClassifyResult.from_proto(response))
                if last:
                    yield ClassifyResult.concat(pending)
                    pending = []
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    @staticmethod
    def classify_request(
        model: str,
        *,
        version: int | None = None,
        heads: Sequence[str] | None = None,
        k: int | None = None,
        weights: str | None = None,
        tie_break: str | None = None,
        nprobe: int | None = None,
        ef_search: int | None = None,
        top_n: int | None = None,
        return_neighbors: bool = False,
    ) -> pb.ClassifyRequest:
        """A ClassifyRequest without inputs, options converted to the wire enums."""
        return pb.ClassifyRequest(
            model=model,
            version=version,
            heads=[_enum(HEADS, head, "heads") for head in heads or ()],
            k=k,
            weights=_enum(WEIGHTS, weights, "weights"),
            tie_break=_enum(TIE_BREAKS, tie_break, "tie_break"),
            nprobe=nprobe,
            ef_search=ef_search,
            top_n=top_n,
            return_neighbors=return_neighbors,
        )

    # -- plumbing -----------------------------------------------------------------------------

    def _call(self, method: Callable[..., T], request: Any, timeout: float | None) -> T:
        try:
            return method(request, timeout=self.timeout if timeout is None else timeout, metadata=self._metadata)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    def _remember_limits(self, limits: pb.ServerLimits) -> None:
        with self._lock:
            self._limits = ServerLimits(limits.max_message_bytes, limits.max_rows_per_request)

    def _rows_per_request(self, row_bytes: int, request_bytes: int) -> int:
        limits = self.limits()
        budget = min(self.max_message_bytes, limits.max_message_bytes) - request_bytes - REQUEST_OVERHEAD_BYTES
        by_bytes = budget // max(row_bytes, 1)
        if by_bytes < 1:
            raise InvalidInputError("x", f"rows of at most {budget} bytes (the message-size limit)", f"{row_bytes} bytes")
        return int(max(1, min(by_bytes, limits.max_rows_per_request)))

    def _split(self, x: np.ndarray, template: Any) -> list[np.ndarray]:
        n = x.shape[0] if x.ndim else 0
        if n == 0:
            return [x]  # sent as is, so the server reports the empty batch
        rows = self._rows_per_request(x.nbytes // n, template.ByteSize())
        return [x[start : start + rows] for start in range(0, n, rows)]

    def _chunked(
        self, method: Any, template: Any, x: np.ndarray, timeout: float | None, decode: Callable[[Any], T]
    ) -> list[T]:
        x = as_input_array(x)
        chunks = self._split(x, template)
        deadline = self.timeout if timeout is None else timeout

        def request_for(chunk: np.ndarray, version: int | None) -> Any:
            request = type(template)()
            request.CopyFrom(template)
            if version is not None:
                request.version = version
            request.inputs.CopyFrom(to_tensor(chunk))
            return request

        try:
            if len(chunks) == 1:
                return [decode(method(request_for(chunks[0], None), timeout=deadline, metadata=self._metadata))]
            first = method(request_for(chunks[0], None), timeout=deadline, metadata=self._metadata)
            pinned = first.version
            results = [decode(first)]
            in_flight: collections.deque[grpc.Future] = collections.deque()
            for chunk in chunks[1:]:
                in_flight.append(
                    method.future(request_for(chunk, pinned), timeout=deadline, metadata=self._metadata)
                )
                if len(in_flight) >= CHUNK_WINDOW:
                    results.append(decode(in_flight.popleft().result()))
            while in_flight:
                results.append(decode(in_flight.popleft().result()))
            return results
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None


__all__ = ["Client", "as_input_array"]
