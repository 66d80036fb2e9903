"""Per-request limits a server announces (ServerLimits) and how many rows of a request fit under them (no protobuf)."""

from __future__ import annotations

from dataclasses import dataclass

from knnserve_client.wire.errors import InvalidInputError

# One default for both ends: the largest request message a server accepts and a client sends.
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_ROWS_PER_REQUEST = 8192
# rows * k per request: bounds FAISS's result arrays (12 bytes a neighbour) and the response size.
DEFAULT_MAX_NEIGHBORS_PER_REQUEST = 4_000_000
# HNSW's beam: search time and memory grow with it (efSearch 2e6 cut 32 clients' throughput 25x;
# 2**31 - 1 ended in std::bad_alloc). 4096 is far past any recall gain on image data.
DEFAULT_MAX_EF_SEARCH = 4096
# Room for everything in a request besides the tensor bytes (model name, options, framing).
REQUEST_OVERHEAD_BYTES = 4096


@dataclass(frozen=True)
class ServerLimits:
    """What one request may carry: message bytes, rows, and neighbours (rows x k)."""

    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_rows_per_request: int = DEFAULT_MAX_ROWS_PER_REQUEST
    max_neighbors_per_request: int = DEFAULT_MAX_NEIGHBORS_PER_REQUEST
    max_ef_search: int = DEFAULT_MAX_EF_SEARCH

    def __post_init__(self) -> None:
        minimums = {"max_message_bytes": 1024, "max_rows_per_request": 1, "max_neighbors_per_request": 1, "max_ef_search": 1}
        for field, minimum in minimums.items():
            if getattr(self, field) < minimum:
                raise InvalidInputError(field, f"an integer >= {minimum}", getattr(self, field))

    def rows_per_request(self, *, row_bytes: int, request_bytes: int, k: int | None, max_message_bytes: int) -> int:
        """The most rows one request may carry: under both sides' message size, the row limit and rows x k.

        ``row_bytes`` is one row's tensor bytes, ``request_bytes`` the request without its tensor,
        ``k`` the neighbours each row asks for (None when no neighbours are searched) and
        ``max_message_bytes`` the sender's own message limit.
        """
        budget = min(max_message_bytes, self.max_message_bytes) - request_bytes - REQUEST_OVERHEAD_BYTES
        rows = min(budget // max(row_bytes, 1), self.max_rows_per_request)
        if k is not None:
            rows = min(rows, self.max_neighbors_per_request // k)
        if rows < 1:
            if budget < row_bytes:
                raise InvalidInputError("x", f"rows of at most {budget} bytes (the message-size limit)", f"{row_bytes} bytes")
            raise InvalidInputError(
                "k", f"at most {self.max_neighbors_per_request} (the server's max_neighbors_per_request)", k
            )
        return int(rows)


__all__ = [
    "DEFAULT_MAX_EF_SEARCH",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_MAX_NEIGHBORS_PER_REQUEST",
    "DEFAULT_MAX_ROWS_PER_REQUEST",
    "REQUEST_OVERHEAD_BYTES",
    "ServerLimits",
]
