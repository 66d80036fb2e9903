"""How many rows of a request fit under a server's limits: bytes, rows, and rows x k."""

from __future__ import annotations

import pytest

from knnserve.errors import InvalidInputError
from knnserve_client.wire.limits import REQUEST_OVERHEAD_BYTES, ServerLimits


def test_rows_are_bounded_by_every_limit() -> None:
    limits = ServerLimits(max_message_bytes=1 << 20, max_rows_per_request=500, max_neighbors_per_request=1000)
    fit = dict(row_bytes=784, request_bytes=100, max_message_bytes=1 << 30)
    assert limits.rows_per_request(k=None, **fit) == 500  # rows
    assert limits.rows_per_request(k=50, **fit) == 20  # rows x k
    by_bytes = ((1 << 20) - 100 - REQUEST_OVERHEAD_BYTES) // 7840
    assert limits.rows_per_request(k=1, **{**fit, "row_bytes": 7840}) == by_bytes
    assert limits.rows_per_request(k=None, **{**fit, "max_message_bytes": 80_000}) == (80_000 - 100 - REQUEST_OVERHEAD_BYTES) // 784


def test_a_k_above_the_neighbor_budget_is_refused_before_any_call() -> None:
    limits = ServerLimits(max_neighbors_per_request=100)
    with pytest.raises(InvalidInputError, match="max_neighbors_per_request"):
        limits.rows_per_request(row_bytes=4, request_bytes=0, k=101, max_message_bytes=1 << 20)


def test_limits_are_validated() -> None:
    with pytest.raises(InvalidInputError, match="max_rows_per_request"):
        ServerLimits(max_rows_per_request=0)
