"""ClassifyStream: read requests ahead on a helper thread so several are in the batcher at once,
answer them in request order, and end the stream with the first failure's status."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

from knnserve.dataplane import PendingClassify
from knnserve_client.wire.v1 import knnserve_pb2 as pb
from knnserve_client.wire.v1.codec import to_proto

_DONE = object()
_POLL_S = 0.1


def classify_stream(
    requests: Iterator[pb.ClassifyRequest],
    start: Callable[[pb.ClassifyRequest], PendingClassify],
    *,
    window: int = 8,
) -> Iterator[pb.ClassifyResponse]:
    """Yield one response per request, in order, with up to ``window`` requests in progress.

    ``start`` validates a request and submits its search; its result is waited for in order and
    encoded. An exception from either (or from the request stream) is raised here, after the
    responses of the requests before it, and ends the stream.
    """
    ahead: queue.Queue[object] = queue.Queue(maxsize=window)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for request in requests:
                try:
                    item: object = start(request)
                except Exception as error:  # delivered in order by the consumer below
                    put(error)
                    return
                if not put(item):
                    return
        except Exception as error:  # the request stream broke (e.g. the client cancelled)
            put(error)
            return
        put(_DONE)

    reader = threading.Thread(target=read, name="classify-stream-reader", daemon=True)
    reader.start()
    try:
        while True:
            item = ahead.get()
            if item is _DONE:
                return
            if isinstance(item, Exception):
                raise item
            assert isinstance(item, PendingClassify)
            yield to_proto(item.result())
    finally:
        stop.set()
        while True:
            try:
                leftover = ahead.get_nowait()
            except queue.Empty:
                break
            if isinstance(leftover, PendingClassify):
                leftover.cancel()


__all__ = ["classify_stream"]
