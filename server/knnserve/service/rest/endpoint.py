"""The REST endpoint's life: bound on an event loop (:func:`start_http`), closed gracefully (:meth:`HttpEndpoint.close`),
and, for the synchronous gRPC server, run on a private loop in a daemon thread (:class:`BackgroundHttp`)."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from knnserve.dataplane import DataPlane
from knnserve.service.metrics import ServiceMetrics
from knnserve.service.rest.app import RestBinding

# Seconds the thread glue waits for the loop to bind the port or to stop, beyond the grace period.
_SLACK_S = 30.0


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server TLS context from a PEM certificate chain and key (the gRPC server's pair)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    context.set_alpn_protocols(["http/1.1"])
    return context


@dataclass
class HttpEndpoint:
    """A running REST endpoint: its bound port, and how to stop it."""

    runner: web.AppRunner
    port: int
    tls: bool

    async def close(self, grace: float) -> None:
        """Stop accepting connections, let requests in flight finish within ``grace`` seconds, then close."""
        for site in list(self.runner.sites):
            await site.stop()
        server = self.runner.server
        if server is not None:
            server.pre_shutdown()  # idle keep-alive connections close; busy ones after their request
            await server.shutdown(grace)
        await self.runner.cleanup()


async def start_http(plane: DataPlane, *, ready: Callable[[], bool], host: str, port: int,
                     metrics: ServiceMetrics | None = None, token: str | None = None, write_token: str | None = None,
                     max_body_bytes: int, tls: tuple[Path, Path] | None = None, reuse_port: bool = False) -> HttpEndpoint:
    """Serve the Open Inference Protocol's REST binding on the running loop; returns once the port is bound.

    ``tls``: (certificate chain, key) PEM files for HTTPS. ``reuse_port``: SO_REUSEPORT, so the processes
    of a ``--workers`` server share the port.
    """
    binding = RestBinding(plane, ready, metrics=metrics, token=token, write_token=write_token, max_body_bytes=max_body_bytes)
    # No access log: the middleware logs each request (JSON lines) and counts it.
    runner = web.AppRunner(binding.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=tls_context(*tls) if tls is not None else None,
                       reuse_port=reuse_port or None, backlog=1024)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise OSError(f"could not bind {host}:{port} for HTTP ({exc.strerror or exc})") from exc
    bound = int(runner.addresses[0][1])
    return HttpEndpoint(runner, bound, tls is not None)


class BackgroundHttp:
    """The REST endpoint on a private asyncio loop in a daemon thread: how the synchronous KnnServer runs it.

    The loop's default executor (where :func:`~knnserve.service.rest.app.run_classify` waits for the data
    plane) is ``executor``: sized and initialised like the gRPC server's workers, so batches can grow with
    the REST calls in flight and each thread has its FAISS thread count.
    """

    def __init__(self, executor: ThreadPoolExecutor, start: Callable[[], object]) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.set_default_executor(executor)
        self._executor = executor
        self._thread = threading.Thread(target=self._loop.run_forever, name="rest-loop", daemon=True)
        self._thread.start()
        try:
            self.endpoint: HttpEndpoint = asyncio.run_coroutine_threadsafe(start(), self._loop).result(_SLACK_S)  # type: ignore[arg-type]
        except BaseException:
            self._stop_loop()
            raise

    @property
    def port(self) -> int:
        return self.endpoint.port

    def begin_close(self, grace: float) -> asyncio.Future[None] | object:
        """Start closing the endpoint (in flight requests get ``grace``); :meth:`finish_close` waits for it."""
        return asyncio.run_coroutine_threadsafe(self.endpoint.close(grace), self._loop)

    def finish_close(self, closing: object, grace: float) -> None:
        """Wait for :meth:`begin_close`'s work, then stop the loop and its executor."""
        try:
            closing.result(grace + _SLACK_S)  # type: ignore[attr-defined]
        finally:
            self._stop_loop()

    def close(self, grace: float) -> None:
        """Close the endpoint gracefully and stop the loop."""
        self.finish_close(self.begin_close(grace), grace)

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_SLACK_S)
        self._executor.shutdown(wait=False, cancel_futures=True)
        if not self._thread.is_alive():
            self._loop.close()


__all__ = ["BackgroundHttp", "HttpEndpoint", "start_http", "tls_context"]
