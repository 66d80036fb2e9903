"""The page's way to the server: one public ``Client`` per bearer token the browser presents, nothing private.

The page holds no token of its own. It forwards the one the browser sends, so the server's own
check decides (UNAUTHENTICATED comes back as HTTP 401 and the page asks for the token). Every answer
of the page starts with a call through one of these clients, even those built from local files
(test images, the bundle's card: a GetModel call first), so nothing is shown to a refused token.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from knnserve_client import Client

# Clients kept open at once (one per distinct token; the oldest is closed first).
MAX_CLIENTS = 16


class Gateway:
    """Clients to one server, one per token."""

    def __init__(self, target: str, *, tls: bool | Path = False, tls_server_name: str | None = None,
                 timeout: float = 60.0) -> None:
        self.target = target
        self.tls = tls
        self.tls_server_name = tls_server_name
        self.timeout = timeout
        self._clients: OrderedDict[str | None, Client] = OrderedDict()
        self._lock = threading.Lock()

    def client(self, token: str | None) -> Client:
        """The client that sends ``token`` (None: no authorization header)."""
        with self._lock:
            client = self._clients.get(token)
            if client is None:
                client = Client(self.target, timeout=self.timeout, tls=self.tls, token=token,
                                tls_server_name=self.tls_server_name)
                self._clients[token] = client
                while len(self._clients) > MAX_CLIENTS:
                    _, oldest = self._clients.popitem(last=False)
                    oldest.close()
            else:
                self._clients.move_to_end(token)
            return client

    def close(self) -> None:
        """Close every client."""
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()


__all__ = ["MAX_CLIENTS", "Gateway"]
