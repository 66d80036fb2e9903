"""ClassifyStream: read requests ahead so several are in the batcher at once, answer them in request
order, and end the stream with the first failure's status. Both sides are tasks on the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from knnserve.dataplane import PendingClassify
from knnserve_client.wire.v1 import knnserve_pb2 as pb
from knnserve_client.wire.v1.codec import to_proto

_DONE = object()


async def classify_stream(
    requests: AsyncIterator[pb.ClassifyRequest],
    start: Callable[[pb.ClassifyRequest], PendingClassify],
    *,
    window: int = 8,
) -> AsyncIterator[pb.ClassifyResponse]:
    """Yield one response per request, in order, with up to ``window`` requests in progress.

    ``start`` validates a request and submits its search; its result is awaited in order and
    encoded. An exception from either (or from the request stream) is raised here, after the
    responses of the requests before it, and ends the stream.
    """
    ahead: asyncio.Queue[object] = asyncio.Queue(maxsize=window)

    async def read() -> None:
        try:
            async for request in requests:
                try:
                    item: object = start(request)
                except Exception as error:  # delivered in order by the consumer below
                    await ahead.put(error)
                    return
                await ahead.put(item)
        except Exception as error:  # the request stream broke (an undecodable message, say)
            await ahead.put(error)
            return
        await ahead.put(_DONE)

    reader = asyncio.get_running_loop().create_task(read())
    try:
        while True:
            item = await ahead.get()
            if item is _DONE:
                return
            if isinstance(item, Exception):
                raise item
            assert isinstance(item, PendingClassify)
            yield to_proto(await item.result())
    finally:
        reader.cancel()
        while not ahead.empty():
            leftover = ahead.get_nowait()
            if isinstance(leftover, PendingClassify):
                leftover.cancel()


__all__ = ["classify_stream"]
