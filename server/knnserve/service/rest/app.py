"""The Open Inference Protocol over HTTP/REST: routes, handlers and what wraps every request (an aiohttp app).

    GET  /v2                                            server metadata         (open)
    GET  /v2/health/live, /v2/health/ready              200, or 400 when not    (open)
    GET  /v2/models/{name}[/versions/{version}]         model metadata
    GET  /v2/models/{name}[/versions/{version}]/ready   200, or 400 when not
    POST /v2/models/{name}[/versions/{version}]/infer   inference (JSON, or JSON + binary data)

Every request goes through :func:`RestBinding.observe` — request id (``x-request-id``, echoed in the response
header), the bearer token (before the body is read), metrics under ``REST <method>``, logs, and every
exception mapped once: ``knnserve_client.wire.status.status_for`` to a gRPC code, :data:`HTTP_STATUS` to
the HTTP status, the message as ``{"error": "..."}``. The data-plane call is :func:`run_classify`, alone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
import numpy as np
from aiohttp import web
from aiohttp.http import HttpVersion11

from knnserve.dataplane import DataPlane
from knnserve.service.auth import bearer_problem
from knnserve.service.inference import (
    PLATFORM,
    SERVER_NAME,
    SERVER_VERSION,
    TensorSpec,
    input_spec,
    model_ready,
    output_arrays,
    output_specs,
    plan_infer,
)
from knnserve.service.logs import request_id_var
from knnserve.service.metrics import ServiceMetrics
from knnserve.service.request_ids import accept_request_id
from knnserve.service.rest.codec import HEADER_LENGTH, header_length, parse_infer, render_infer
from knnserve_client.wire.errors import RequestTooLargeError, TokenRejectedError
from knnserve_client.wire.inference.tensors import version_from_text
from knnserve_client.wire.query import KnnQuery
from knnserve_client.wire.results import ClassifyResult
from knnserve_client.wire.status import REQUEST_ID_KEY, status_for

log = logging.getLogger("knnserve.service.rest")

# The HTTP status of each gRPC code (one table; docs/service.md lists it). RESOURCE_EXHAUSTED is always
# a request too large for the limits (body bytes, rows, rows x k): 413, not 429 (no rate limit here).
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 413,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
# aiohttp's own refusals (no such path, wrong method), as the code the metrics count them under.
_CODE_OF_HTTP = {404: grpc.StatusCode.NOT_FOUND, 405: grpc.StatusCode.UNIMPLEMENTED, 400: grpc.StatusCode.INVALID_ARGUMENT}
INTERNAL_MESSAGE = "internal error; the server log has the details (request id in the x-request-id response header)"
EXTENSIONS = ["binary_tensor_data"]
# Bodies above this are decoded (and large answers encoded) on a worker thread, so that one large
# JSON document does not hold the event loop every other request waits on.
OFFLOAD_BYTES = 64 * 1024
OFFLOAD_VALUES = 16 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def run_classify(plane: DataPlane, name: str, version: int | None, inputs: np.ndarray, query: KnnQuery,
                       heads: Sequence[str], *, return_neighbors: bool, field: str) -> ClassifyResult:
    """THE data-plane call of the REST binding, and the only one: validated and submitted on the event
    loop, the call's task waits for its batch like a gRPC call's."""
    return await plane.classify(name, version, inputs, query, heads, return_neighbors=return_neighbors, field=field)


def _json(document: object, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(document, separators=(",", ":")).encode(), status=status,
                        content_type="application/json")


def error_response(status: int, message: str) -> web.Response:
    """The protocol's error body, ``{"error": message}``, with an HTTP status."""
    response = _json({"error": message}, status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="knnserve"'
    return response


def _tensor(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "datatype": spec.datatype, "shape": list(spec.shape)}


def _version(request: web.Request, field: str) -> int | None:
    return version_from_text(request.match_info.get("version", ""), field)


class RestBinding:
    """The REST binding over a DataPlane; ``ready`` says whether health "" is SERVING.

    Parameters
    ----------
    plane : the data plane every request goes to.
    ready : True exactly when the server is ready (models loaded, not draining).
    metrics : where requests are counted, under ``REST <method>``.
    token, write_token : bearer tokens (None: reads are open); the write token opens reads too.
    max_body_bytes : largest request body (ServerLimits.max_message_bytes), refused before it is read.
    """

    def __init__(self, plane: DataPlane, ready: Callable[[], bool], *, metrics: ServiceMetrics | None = None,
                 token: str | None = None, write_token: str | None = None, max_body_bytes: int) -> None:
        self._plane = plane
        self._ready = ready
        self._metrics = metrics
        self._token = token
        self._write_token = write_token
        self._limit = max_body_bytes

    # -- the app ---------------------------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp application serving the protocol's routes."""
        app = web.Application(middlewares=[self.observe], client_max_size=self._limit)
        routes: list[tuple[str, str, Handler, str, bool]] = [
            ("GET", "/v2", self.server_metadata, "ServerMetadata", True),
            ("GET", "/v2/health/live", self.server_live, "ServerLive", True),
            ("GET", "/v2/health/ready", self.server_ready, "ServerReady", True),
        ]
        for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
            routes += [("GET", prefix, self.model_metadata, "ModelMetadata", False),
                       ("GET", f"{prefix}/ready", self.model_ready, "ModelReady", False),
                       ("POST", f"{prefix}/infer", self.model_infer, "ModelInfer", False)]
        for verb, path, handler, method, open_ in routes:
            route = _named(handler, method, open_)
            if verb == "POST":
                app.router.add_post(path, route, expect_handler=self.expect_continue)
            else:
                app.router.add_get(path, route)
        return app

    # -- around every request --------------------------------------------------------------------

    def refusal(self, request: web.Request) -> str | None:
        """Why the request's credentials are refused, or None (open route, no token, or the right one)."""
        if self._token is None or getattr(request.match_info.handler, "open_route", True):
            return None
        sent = request.headers.getall("Authorization", [])
        problem = bearer_problem(sent, self._token)
        if problem is None or (self._write_token is not None and bearer_problem(sent, self._write_token) is None):
            return None
        return problem.replace("(metadata authorization:", "(header Authorization:")

    def _too_large(self, request: web.Request) -> RequestTooLargeError | None:
        length = request.content_length
        if length is not None and length > self._limit:
            return RequestTooLargeError(f"request: {length} bytes exceed the limit of {self._limit} bytes per message "
                                        "(ServerLimits.max_message_bytes)")
        return None

    async def expect_continue(self, request: web.Request) -> None:
        """``Expect: 100-continue``: invite the body only when it will be read (right token, within the limit);
        otherwise the handler answers at once and the client never sends it."""
        if request.version != HttpVersion11 or request.headers.get("Expect", "").lower() != "100-continue":
            return
        if self.refusal(request) is None and self._too_large(request) is None:
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0

    @web.middleware
    async def observe(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Request id, auth, metrics, logs, and every exception mapped to its status and error body."""
        method = getattr(request.match_info.handler, "oip_method", "other")
        request_id = accept_request_id(request.headers.getall(REQUEST_ID_KEY, []))
        context = request_id_var.set(request_id)
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            problem = self.refusal(request)
            if problem is not None:
                raise TokenRejectedError(problem)
            response = await handler(request)
        except web.HTTPException as exc:  # aiohttp's own: no such route, method not allowed
            code = _CODE_OF_HTTP.get(exc.status, grpc.StatusCode.UNKNOWN)
            response = error_response(exc.status, f"{request.method} {request.path}: {exc.reason}"
                                      + ("; the routes are /v2, /v2/health/{live,ready}, /v2/models/NAME[/versions/V][/ready|/infer]"
                                         if exc.status == 404 else ""))
            if exc.status == 405:
                response.headers["Allow"] = exc.headers.get("Allow", "")
        except Exception as error:  # every failure goes through status_for
            mapped = status_for(error)
            code = mapped.code
            seconds = time.perf_counter() - started
            fields = {"method": f"REST {method}", "code": code.name, "duration_ms": round(seconds * 1e3, 3),
                      "request_id": request_id}
            if mapped.log_traceback:
                log.error("rest request failed: %s", error, exc_info=error, extra=fields)
                response = error_response(HTTP_STATUS[code], INTERNAL_MESSAGE)
            else:
                log.info("rest request rejected: %s", mapped.message, extra=fields)
                response = error_response(HTTP_STATUS.get(code, 500), mapped.message)
            if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                response.force_close()  # the rest of an oversized body is not read on this connection
        finally:
            request_id_var.reset(context)
        seconds = time.perf_counter() - started
        response.headers[REQUEST_ID_KEY] = request_id
        if self._metrics is not None:
            self._metrics.observe_request(f"REST {method}", code.name, seconds)
        if code == grpc.StatusCode.OK and log.isEnabledFor(logging.DEBUG):
            log.debug("rest request ok", extra={"method": f"REST {method}", "code": "OK",
                                                "duration_ms": round(seconds * 1e3, 3), "request_id": request_id})
        return response

    # -- the protocol ----------------------------------------------------------------------------

    async def server_metadata(self, request: web.Request) -> web.Response:
        return _json({"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": EXTENSIONS})

    async def server_live(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def server_ready(self, request: web.Request) -> web.Response:
        return web.Response(status=200 if self._ready() else 400)

    async def model_ready(self, request: web.Request) -> web.Response:
        ready = model_ready(self._plane, request.match_info["name"], _version(request, "version"), self._ready)
        return web.Response(status=200 if ready else 400)

    async def model_metadata(self, request: web.Request) -> web.Response:
        info = self._plane.describe(request.match_info["name"], _version(request, "version"), field="name")
        return _json({"name": info.name, "versions": [str(v) for v in info.versions], "platform": PLATFORM,
                      "inputs": [_tensor(input_spec(info))], "outputs": [_tensor(spec) for spec in output_specs(info)]})

    async def model_infer(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        version = _version(request, "model_version")
        body = await self._read(request)
        json_bytes = header_length(request.headers.get(HEADER_LENGTH), len(body))
        if len(body) > OFFLOAD_BYTES:
            decoded = await asyncio.to_thread(parse_infer, body, json_bytes)
        else:
            decoded = parse_infer(body, json_bytes)
        info = self._plane.describe(name, version)
        plan = plan_infer(info, decoded.outputs)
        result = await run_classify(self._plane, name, info.version, decoded.images, plan.query(decoded.query), plan.heads,
                                    return_neighbors=plan.return_neighbors, field="inputs[0]")
        outputs = output_arrays(plan, result)
        if sum(array.size for _, array in outputs) > OFFLOAD_VALUES:
            text, json_length = await asyncio.to_thread(render_infer, result.model, result.version, decoded, outputs)
        else:
            text, json_length = render_infer(result.model, result.version, decoded, outputs)
        response = web.Response(body=text, content_type="application/json" if json_length is None else "application/octet-stream")
        if json_length is not None:
            response.headers[HEADER_LENGTH] = str(json_length)
        return response

    async def _read(self, request: web.Request) -> bytes:
        """The whole body, refused unread when its declared length is over the limit, or once it passes it."""
        too_large = self._too_large(request)
        if too_large is not None:
            raise too_large
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise RequestTooLargeError(f"request: more than {self._limit} bytes exceed the limit of {self._limit} bytes "
                                       "per message (ServerLimits.max_message_bytes)") from None


def _named(handler: Handler, method: str, open_route: bool) -> Handler:
    """``handler`` marked with the protocol method it serves (metrics, logs) and whether it needs no token."""

    async def route(request: web.Request) -> web.StreamResponse:
        return await handler(request)

    route.oip_method = method  # type: ignore[attr-defined]
    route.open_route = open_route  # type: ignore[attr-defined]
    return route


__all__ = ["EXTENSIONS", "HTTP_STATUS", "INTERNAL_MESSAGE", "RestBinding", "error_response", "run_classify"]
