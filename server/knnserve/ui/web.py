"""The page's HTTP side (stdlib ``http.server``): the HTML page, its static files, and JSON endpoints with status codes.

Routes::

    GET  /                         the page (server-rendered HTML)
    GET  /static/ui.js, ui.css     its script and style
    GET  /api/models               served models
    GET  /api/card?model=&version= the model card
    GET  /api/test?model=&version=&offset=&limit=[&label=]   a page of test images
    POST /api/inspect              classify one test row or uploaded image (JSON body)
    GET  /api/confusion?model=&version=                      the k-NN head's confusion matrix on the test split
    GET  /api/examples?model=&version=&true=&predicted=      test rows of one confused pair

Errors are ``{"error": message, "status": code}`` with the HTTP status: 400 bad input, 401 token
missing or refused by the server, 404 unknown model or route, 413 too large, 503/504 server down or
slow, 502 a server-side failure, 500 anything else (its traceback only in this process's log).
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from knnserve.errors import BundleError, DatasetError, InvalidInputError, KnnServeError, MissingExtraError
from knnserve.ui.app import UiApp
from knnserve.ui.images import MAX_UPLOAD_BYTES
from knnserve.ui.page import render_page
from knnserve_client.wire.errors import ModelNotFoundError
from knnserve_client.wire.status import (
    DeadlineExceededError,
    InvalidArgumentError,
    KnnServeClientError,
    NotFoundError,
    TooLargeError,
    UnauthenticatedError,
    UnavailableError,
)

log = logging.getLogger(__name__)

# A JSON body may carry one base64 upload (4/3 of its bytes) and a few options.
MAX_BODY_BYTES = MAX_UPLOAD_BYTES * 4 // 3 + 64 * 1024
# A refused body up to this size is read and dropped so the browser sees the 413; a larger one closes the connection.
DISCARD_LIMIT = 64 * 1024 * 1024
STATIC = {"ui.js": "text/javascript; charset=utf-8", "ui.css": "text/css; charset=utf-8"}
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
GENERIC_ERROR = "internal error in the inspection page; its log has the details"


def _plain(value: Any) -> Any:
    """JSON for the numpy scalars an answer may carry."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class HttpError(Exception):
    """An error the handler answers with its own status."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def error_status(error: BaseException) -> tuple[HTTPStatus, str]:
    """The HTTP status and the message the page shows for an exception (never a traceback)."""
    table: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], HTTPStatus], ...] = (
        (UnauthenticatedError, HTTPStatus.UNAUTHORIZED),
        ((NotFoundError, ModelNotFoundError), HTTPStatus.NOT_FOUND),
        ((InvalidArgumentError, InvalidInputError), HTTPStatus.BAD_REQUEST),
        (TooLargeError, HTTPStatus.REQUEST_ENTITY_TOO_LARGE),
        (UnavailableError, HTTPStatus.SERVICE_UNAVAILABLE),
        (DeadlineExceededError, HTTPStatus.GATEWAY_TIMEOUT),
        (KnnServeClientError, HTTPStatus.BAD_GATEWAY),
        ((BundleError, DatasetError, MissingExtraError, KnnServeError), HTTPStatus.INTERNAL_SERVER_ERROR),
    )
    if isinstance(error, HttpError):
        return error.status, str(error)
    for kind, status in table:
        if isinstance(error, kind):
            if isinstance(error, KnnServeClientError):
                prefix = "the server wants a bearer token: " if status == HTTPStatus.UNAUTHORIZED else "the server said: "
                return status, prefix + error.details
            return status, str(error)
    return HTTPStatus.INTERNAL_SERVER_ERROR, GENERIC_ERROR


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, None when there is none."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HttpError(HTTPStatus.UNAUTHORIZED, "the Authorization header must be 'Bearer <token>'")
    return token.strip()


class UiHandler(BaseHTTPRequestHandler):
    """One request to the page; ``server.app`` answers it."""

    server: UiHttpServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.info("%s %s", self.address_string(), format % args)

    # -- responses ---------------------------------------------------------------------------

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, *, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=300" if cache else "no-store")
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        self._send(status, json.dumps(payload, default=_plain).encode(), "application/json")

    def _fail(self, error: BaseException) -> None:
        status, message = error_status(error)
        if status == HTTPStatus.INTERNAL_SERVER_ERROR and message == GENERIC_ERROR:
            log.error("%s %s failed", self.command, self.path, exc_info=error)
        self._json(status, {"error": message, "status": int(status)})

    # -- dispatch ----------------------------------------------------------------------------

    def _check_host(self) -> None:
        """On a loopback address, answer only requests addressed to a loopback name (no DNS rebinding)."""
        if not self.server.loopback:
            return
        host = (self.headers.get("Host") or "").strip()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name not in LOOPBACK_NAMES:
            raise HttpError(HTTPStatus.FORBIDDEN, f"this page answers requests to 127.0.0.1 or localhost, not {host!r}")

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        """Answer a GET."""
        try:
            self._check_host()
            url = urlsplit(self.path)
            query = {key: values[-1] for key, values in parse_qs(url.query).items()}
            if url.path == "/":
                self._send(HTTPStatus.OK, render_page(self.server.app.config).encode(), "text/html; charset=utf-8")
                return
            if url.path.startswith("/static/"):
                self._static(url.path.removeprefix("/static/"))
                return
            self._json(HTTPStatus.OK, self._api_get(url.path, query))
        except Exception as error:  # every failure becomes a JSON (or plain) answer; the log keeps tracebacks
            self._fail(error)

    def do_HEAD(self) -> None:  # noqa: N802
        """Answer a HEAD like a GET without the body."""
        self.do_GET()

    def do_POST(self) -> None:  # noqa: N802
        """Answer a POST (the inspection)."""
        try:
            self._check_host()
            url = urlsplit(self.path)
            if url.path != "/api/inspect":
                raise HttpError(HTTPStatus.NOT_FOUND, f"no such endpoint: POST {url.path}")
            body = self._read_json()
            self._json(HTTPStatus.OK, self.server.app.inspect(self._token(), body))
        except Exception as error:
            self._fail(error)

    def _token(self) -> str | None:
        return bearer_token(self.headers.get("Authorization"))

    def _read_json(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            raise HttpError(HTTPStatus.BAD_REQUEST, "Content-Length: expected a number") from None
        if length > MAX_BODY_BYTES:
            self._discard(length)
            raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                            f"the upload is too large: at most {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB of image")
        raw = self.rfile.read(length)
        if "json" not in (self.headers.get("Content-Type") or ""):
            raise HttpError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "expected a JSON body (Content-Type: application/json)")
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise HttpError(HTTPStatus.BAD_REQUEST, "the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise HttpError(HTTPStatus.BAD_REQUEST, "expected a JSON object")
        return body

    def _discard(self, length: int) -> None:
        """Read and drop a refused body (so the client reads the answer), up to ``DISCARD_LIMIT``; past it, hang up."""
        if length > DISCARD_LIMIT:
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 20))
            if not chunk:
                break
            length -= len(chunk)

    def _static(self, name: str) -> None:
        if name not in STATIC:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no such file: /static/{name}")
        data = resources.files("knnserve.ui").joinpath("static", name).read_bytes()
        self._send(HTTPStatus.OK, data, STATIC[name], cache=False)

    def _api_get(self, path: str, q: dict[str, str]) -> dict[str, Any]:
        app = self.server.app
        token = self._token()
        if path == "/api/models":
            return app.models(token)
        if path == "/api/card":
            return app.card(token, q.get("model"), q.get("version"))
        if path == "/api/test":
            return app.test_images(token, q.get("model"), q.get("version"), q.get("offset", "0"), q.get("limit", "24"),
                                   q.get("label"))
        if path == "/api/confusion":
            return app.confusion(token, q.get("model"), q.get("version"))
        if path == "/api/examples":
            return app.examples(token, q.get("model"), q.get("version"), q.get("true"), q.get("predicted"))
        raise HttpError(HTTPStatus.NOT_FOUND, f"no such page or endpoint: {path}")


class UiHttpServer(ThreadingHTTPServer):
    """A threading HTTP server that carries the app; ``start`` serves on a background thread."""

    daemon_threads = True

    def __init__(self, app: UiApp, host: str = "127.0.0.1", port: int = 0) -> None:
        if ":" in host:  # an IPv6 address such as ::1
            self.address_family = socket.AF_INET6
        super().__init__((host, port), UiHandler)
        self.app = app
        self.host = host
        self.loopback = host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")
        self._thread: threading.Thread | None = None

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A browser that hangs up is routine; anything else goes to the log, not to stderr."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionResetError, BrokenPipeError)):
            log.debug("%s hung up: %s", client_address, error)
        else:
            log.error("request from %s failed", client_address, exc_info=error)

    @property
    def port(self) -> int:
        """The port bound (the one the OS chose for port 0)."""
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        """The page's address."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> int:
        """Serve on a background thread; returns the port."""
        self._thread = threading.Thread(target=self.serve_forever, name="knnserve-ui", daemon=True)
        self._thread.start()
        return self.port

    def stop(self) -> None:
        """Stop serving, close the socket and the app's clients."""
        self.shutdown()
        self.server_close()
        self.app.close()
        if self._thread is not None:
            self._thread.join(timeout=5)


__all__ = ["MAX_BODY_BYTES", "HttpError", "UiHandler", "UiHttpServer", "bearer_token", "error_status"]
