"""The REST endpoint's life: bound on the server's event loop (:func:`start_http`), beside the grpc.aio
server, and closed gracefully (:meth:`HttpEndpoint.close`)."""

from __future__ import annotations

import ssl
from collections.abc import Callable
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



__all__ = ["HttpEndpoint", "start_http", "tls_context"]
