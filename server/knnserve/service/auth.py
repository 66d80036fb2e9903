"""Bearer-token authentication: the one check (RFC 6750 header, scheme case-insensitive per RFC 7235),
on plain ``authorization`` values, so every protocol applies the same rule: the RPC wrapper
(``rpc.py``) before a body is decoded, the health servicer for per-model entries.

Two tokens: the read token (``--token-file``; unset: reads are open) and the write token
(``--write-token-file``), which the write RPCs need (``WRITE_METHODS``) and which reads accept too.
A write with the read token is refused with PERMISSION_DENIED; one with no or a wrong token with
UNAUTHENTICATED; any write to a server without a write token with PERMISSION_DENIED.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from knnserve_client.wire.errors import TokenRejectedError, WriteRefusedError

AUTHORIZATION = "authorization"
# Open without a token, so load balancers and probes work: the overall health ("" and the service
# name; per-model health is checked in the health servicer itself) and the Open Inference
# Protocol's server liveness, readiness (KServe's probes) and metadata (name, version), which name
# no model: the same three the REST binding leaves open (GET /v2, /v2/health/live, /v2/health/ready).
OPEN_METHOD_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/inference.GRPCInferenceService/ServerLive",
    "/inference.GRPCInferenceService/ServerReady",
    "/inference.GRPCInferenceService/ServerMetadata",
)
WRITE_METHODS = frozenset(
    f"/knnserve.v1.KnnServe/{name}" for name in ("AddExamples", "RemoveExamples", "SnapshotModel")
)


def bearer_problem(values: Sequence[str], token: str) -> str | None:
    """Why these ``authorization`` values (gRPC metadata or HTTP headers) are refused, or None for exactly one
    ``Bearer <token>``."""
    if not values:
        return "missing bearer token (metadata authorization: Bearer <token>)"
    if len(values) > 1:
        return f"{len(values)} authorization headers; send exactly one"
    scheme, _, sent = values[0].strip().partition(" ")
    if scheme.lower() != "bearer" or not sent.strip():
        return "expected the Bearer scheme: authorization: Bearer <token>"
    # compare_digest: the time taken must not reveal how much of the token matched.
    if not hmac.compare_digest(sent.strip().encode("utf-8", "replace"), token.encode("utf-8")):
        return "wrong bearer token"
    return None


@dataclass(frozen=True)
class Tokens:
    """The server's tokens: ``read`` guards reads (None: open), ``write`` guards writes and opens reads too."""

    read: str | None = None
    write: str | None = None

    @property
    def enabled(self) -> bool:
        """True when any call needs a token."""
        return self.read is not None or self.write is not None

    def read_problem(self, values: Sequence[str]) -> Exception | None:
        """Why a read is refused (TokenRejectedError), or None."""
        if self.read is None:
            return None
        problem = bearer_problem(values, self.read)
        if problem is None or (self.write is not None and bearer_problem(values, self.write) is None):
            return None
        return TokenRejectedError(problem)

    def write_problem(self, values: Sequence[str]) -> Exception | None:
        """Why a write is refused (WriteRefusedError or TokenRejectedError), or None when it carries the write token."""
        if self.write is None:
            return WriteRefusedError("this server takes no writes (start it with --online-dir DIR --write-token-file FILE)")
        problem = bearer_problem(values, self.write)
        if problem is None:
            return None
        if self.read is not None and bearer_problem(values, self.read) is None:
            return WriteRefusedError("the read token cannot write: send the write token (--write-token-file)")
        return TokenRejectedError(f"{problem} (writes need the write token)")


__all__ = ["AUTHORIZATION", "OPEN_METHOD_PREFIXES", "WRITE_METHODS", "Tokens", "bearer_problem"]
