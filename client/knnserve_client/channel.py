"""Channel construction: credentials, message-size limits and the retry policy (UNAVAILABLE only)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import grpc

from knnserve_client.wire.limits import DEFAULT_MAX_MESSAGE_BYTES
from knnserve_client.wire.v1 import knnserve_pb2 as pb

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["KnnServe"].full_name
# Responses are bounded by the server's max_neighbors_per_request, not by the request size limit.
MIN_RECEIVE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class RetryPolicy:
    """gRPC's own retry policy (service config), applied to UNAVAILABLE only: other codes are final."""

    max_attempts: int = 4
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 2.0
    backoff_multiplier: float = 2.0

    def service_config(self) -> str:
        """The JSON service config: the retry policy for every KnnServe method, and round-robin balancing.

        Round robin spreads calls over every address the target resolves to (a Kubernetes headless
        Service, ``ipv4:HOST:PORT,HOST:PORT``); gRPC's default, pick_first, sends them all to one.
        """
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts: expected >= 1, got {self.max_attempts}")
        method_config: dict[str, object] = {"name": [{"service": SERVICE_NAME}]}
        if self.max_attempts > 1:
            method_config["retryPolicy"] = {
                "maxAttempts": self.max_attempts,
                "initialBackoff": f"{self.initial_backoff_s}s",
                "maxBackoff": f"{self.max_backoff_s}s",
                "backoffMultiplier": self.backoff_multiplier,
                "retryableStatusCodes": ["UNAVAILABLE"],
            }
        return json.dumps({"loadBalancingConfig": [{"round_robin": {}}], "methodConfig": [method_config]})


def channel_credentials(tls: bool | str | Path | bytes) -> grpc.ChannelCredentials | None:
    """None for plaintext; TLS with the system roots (True), or with a PEM root certificate (path or bytes)."""
    if tls is False or tls is None:
        return None
    if tls is True:
        return grpc.ssl_channel_credentials()
    pem = tls if isinstance(tls, bytes) else Path(tls).read_bytes()
    return grpc.ssl_channel_credentials(root_certificates=pem)


def make_channel(
    target: str,
    *,
    tls: bool | str | Path | bytes = False,
    tls_server_name: str | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    retry: RetryPolicy = RetryPolicy(),
) -> grpc.Channel:
    """Open a channel to ``target`` (HOST:PORT) with limits and retries configured."""
    options: list[tuple[str, object]] = [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max(max_message_bytes, MIN_RECEIVE_BYTES)),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", retry.service_config()),
    ]
    if tls_server_name:
        options.append(("grpc.ssl_target_name_override", tls_server_name))
    credentials = channel_credentials(tls)
    if credentials is None:
        return grpc.insecure_channel(target, options=options)
    return grpc.secure_channel(target, credentials, options=options)


__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "SERVICE_NAME", "RetryPolicy", "channel_credentials", "make_channel"]
