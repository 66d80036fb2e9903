"""Request ids: the one a caller sent (``x-request-id``, if it is a usable one) or a fresh one.

Fresh ids are a random per-process prefix and a counter: unique across the processes of a
``--workers`` server and across restarts, and far cheaper than a uuid4 per call. Every protocol
(gRPC metadata, HTTP headers) takes its id through :func:`accept_request_id`.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Sequence

MAX_REQUEST_ID_CHARS = 128

_ID_PREFIX = uuid.uuid4().hex[:12]
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    """A fresh request id (32 hex characters, like a uuid4's)."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):020x}"


def accept_request_id(sent: Sequence[str]) -> str:
    """The caller's id when it sent exactly one printable id of at most 128 characters, else a fresh one."""
    if len(sent) == 1 and 0 < len(sent[0]) <= MAX_REQUEST_ID_CHARS and sent[0].isprintable():
        return sent[0]
    return new_request_id()


def _reseed_request_ids() -> None:
    global _ID_PREFIX, _ID_COUNTER  # noqa: PLW0603 - a forked worker must not repeat its parent's ids
    _ID_PREFIX, _ID_COUNTER = uuid.uuid4().hex[:12], itertools.count(1)


os.register_at_fork(after_in_child=_reseed_request_ids)

__all__ = ["MAX_REQUEST_ID_CHARS", "accept_request_id", "new_request_id"]
