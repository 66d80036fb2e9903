"""Client: owns a channel to a knnserve server; numpy in, wire result types out, its own exceptions."""

from __future__ import annotations

import collections
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc
import numpy as np

from knnserve_client.channel import RetryPolicy, make_channel
from knnserve_client.wire.errors import InvalidInputError
from knnserve_client.wire.examples import AddResult, OnlineInfo, RemoveResult, SnapshotResult
from knnserve_client.wire.limits import DEFAULT_MAX_MESSAGE_BYTES, ServerLimits
from knnserve_client.wire.model_info import ModelInfo
from knnserve_client.wire.query import KnnQuery
from knnserve_client.wire.results import ClassifyResult, SearchResult
from knnserve_client.wire.status import from_rpc_error
from knnserve_client.wire.v1 import knnserve_pb2 as pb
from knnserve_client.wire.v1 import knnserve_pb2_grpc
from knnserve_client.wire.v1.codec import from_proto, query_into
from knnserve_client.wire.v1.enums import HEAD
from knnserve_client.wire.v1.tensors import to_tensor

T = TypeVar("T")

# Unary chunk requests kept in flight at once for a large input.
CHUNK_WINDOW = 4


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
        respecting every limit the server announces (message bytes, rows, rows x k).
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
        # Models as the server last described them: (name, None) is the newest version of ``name``.
        self._described: dict[tuple[str, int | None], ModelInfo] = {}
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
        models = [from_proto(m) for m in response.models]
        self._remember(response.limits, {(info.name, None): info for info in models})
        return models

    def model(self, name: str, version: int | None = None, *, timeout: float | None = None) -> ModelInfo:
        """One model at one version (default: its newest)."""
        response = self._call(self._stub.GetModel, pb.GetModelRequest(name=name, version=version), timeout)
        info = from_proto(response.model)
        self._remember(response.limits, {(name, version): info})
        return info

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

        Unset options take the model's defaults. Inputs over the server's limits (message bytes,
        rows, rows x k) are sent as several requests (a few in flight at once) and the results
        joined in row order; all chunks are pinned to the version that answered the first.
        """
        query = KnnQuery(k=k, weights=weights, tie_break=tie_break, nprobe=nprobe, ef_search=ef_search, top_n=top_n)
        template = self.classify_request(model, version=version, heads=heads, query=query, return_neighbors=return_neighbors)
        parts = self._chunked(self._stub.Classify, template, x, timeout, from_proto)
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
        query = KnnQuery(k=k, nprobe=nprobe, ef_search=ef_search)
        template = query_into(pb.SearchRequest(model=model, version=version), query)
        parts = self._chunked(self._stub.Search, template, x, timeout, from_proto)
        return SearchResult.concat(parts)

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

        Each batch is split under the server's limits and re-joined. ``timeout`` bounds the whole
        stream (default: none). The stream is not retried once it has started.
        """
        query = KnnQuery(k=k, weights=weights, tie_break=tie_break, nprobe=nprobe, ef_search=ef_search, top_n=top_n)
        template = self.classify_request(model, version=version, heads=heads, query=query)
        plan: collections.deque[bool] = collections.deque()  # per request sent: is it the last chunk of its batch
        plan_lock = threading.Lock()

        def requests() -> Iterator[pb.ClassifyRequest]:
            for number, batch in enumerate(batches):
                chunks = self._split(as_input_array(batch), template)
                for position, chunk in enumerate(chunks):
                    request = pb.ClassifyRequest()
                    request.CopyFrom(template)
                    request.inputs.CopyFrom(to_tensor(chunk))
                    request.tag = f"{number}:{position}"
                    with plan_lock:
                        plan.append(position == len(chunks) - 1)
                    yield request

        try:
            responses = self._stub.ClassifyStream(requests(), timeout=timeout, metadata=self._metadata)
            pending: list[ClassifyResult] = []
            for response in responses:
                with plan_lock:
                    last = plan.popleft()
                pending.append(from_proto(response))
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
        query: KnnQuery = KnnQuery(),
        return_neighbors: bool = False,
    ) -> pb.ClassifyRequest:
        """A ClassifyRequest without inputs, its options converted to the wire enums."""
        request = pb.ClassifyRequest(
            model=model,
            version=version,
            heads=[HEAD.to_wire(head) for head in heads or ()],
            return_neighbors=return_neighbors,
        )
        return query_into(request, query)

    # -- writes (servers started with --online-dir; the client needs the write token) -----------

    def add_examples(self, model: str, x: np.ndarray, labels: Sequence[str], *, request_id: str | None = None,
                     timeout: float | None = None) -> AddResult:
        """Add labelled rows (the model's input space) to the newest version; returns once the server has them on disk.

        ``request_id``: a retry with the same id is applied once (default: a fresh one per call, so
        the client's own retries of UNAVAILABLE never apply a write twice).
        """
        request = pb.AddExamplesRequest(model=model, inputs=to_tensor(as_input_array(x)), labels=list(labels),
                                        request_id=request_id if request_id is not None else uuid.uuid4().hex)
        return from_proto(self._call(self._stub.AddExamples, request, timeout))

    def remove_examples(self, model: str, ids: Sequence[int] | np.ndarray, *, request_id: str | None = None,
                        timeout: float | None = None) -> RemoveResult:
        """Hide examples (training rows or added ones) by id from every search of the newest version."""
        request = pb.RemoveExamplesRequest(model=model, ids=[int(i) for i in np.asarray(ids).reshape(-1)],
                                           request_id=request_id if request_id is not None else uuid.uuid4().hex)
        return from_proto(self._call(self._stub.RemoveExamples, request, timeout))

    def snapshot(self, model: str, *, timeout: float | None = None) -> SnapshotResult:
        """Fold the newest version's log into the next version (written atomically, then served)."""
        return from_proto(self._call(self._stub.SnapshotModel, pb.SnapshotModelRequest(model=model), timeout))

    def online_state(self, model: str, version: int | None = None, *, timeout: float | None = None) -> OnlineInfo | None:
        """What changed in a version since its bundle (None when the server takes no writes)."""
        response = self._call(self._stub.GetModel, pb.GetModelRequest(name=model, version=version), timeout)
        return from_proto(response.online) if response.HasField("online") else None

    # -- plumbing -----------------------------------------------------------------------------

    def _call(self, method: Callable[..., T], request: Any, timeout: float | None) -> T:
        try:
            return method(request, timeout=self.timeout if timeout is None else timeout, metadata=self._metadata)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    def _remember(self, limits: pb.ServerLimits, described: dict[tuple[str, int | None], ModelInfo]) -> None:
        with self._lock:
            self._limits = from_proto(limits)
            self._described.update(described)

    def _neighbors_per_row(self, request: Any) -> int | None:
        """k of a request that searches (the model's default k when unset), None when no search runs.

        The default comes from the models the server already described (``limits()`` lists them),
        else from one GetModel call.
        """
        if isinstance(request, pb.ClassifyRequest) and request.heads and HEAD.to_wire("knn") not in request.heads:
            return None
        if request.HasField("k"):
            return int(request.k)
        version = request.version if request.HasField("version") else None
        info = self._described.get((request.model, version)) or self.model(request.model, version)
        return info.defaults.k or 1

    def _split(self, x: np.ndarray, template: Any) -> list[np.ndarray]:
        n = x.shape[0] if x.ndim else 0
        if n == 0:
            return [x]  # sent as is, so the server reports the empty batch
        rows = self.limits().rows_per_request(
            row_bytes=x.nbytes // n,
            request_bytes=template.ByteSize(),
            k=self._neighbors_per_row(template),
            max_message_bytes=self.max_message_bytes,
        )
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
            first = method(request_for(chunks[0], None), timeout=deadline, metadata=self._metadata)
            results = [decode(first)]
            in_flight: collections.deque[grpc.Future] = collections.deque()
            for chunk in chunks[1:]:
                in_flight.append(method.future(request_for(chunk, first.version), timeout=deadline, metadata=self._metadata))
                if len(in_flight) >= CHUNK_WINDOW:
                    results.append(decode(in_flight.popleft().result()))
            while in_flight:
                results.append(decode(in_flight.popleft().result()))
            return results
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None


__all__ = ["Client", "as_input_array"]
