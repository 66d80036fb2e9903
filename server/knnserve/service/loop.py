"""The server's event loop, run in a thread of its own so the process's main thread stays free for
signals, reloads and the lifecycle (``KnnServer.run``), and tests can start servers in-process.

Which loop (``serve --event-loop``): ``uvloop`` (libuv; its loop iteration, timers and cross-thread
wake-ups cost less Python per call than asyncio's own), ``asyncio`` (the standard library's), or
``auto``, uvloop when it is installed (the server extra installs it) and asyncio otherwise.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
EVENT_LOOPS = ("auto", "asyncio", "uvloop")


def event_loop_kind(choice: str = "auto") -> str:
    """``asyncio`` or ``uvloop``: what ``choice`` means on this machine."""
    if choice not in EVENT_LOOPS:
        raise ValueError(f"event loop: expected one of {', '.join(EVENT_LOOPS)}, got {choice!r}")
    if choice == "auto":
        return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"
    return choice


def new_event_loop(choice: str = "auto") -> asyncio.AbstractEventLoop:
    """A new loop of the kind ``choice`` names (see :func:`event_loop_kind`)."""
    if event_loop_kind(choice) == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class LoopThread:
    """An asyncio loop, created at once and run by :meth:`start` in a daemon thread until :meth:`stop`."""

    def __init__(self, name: str = "knnserve-loop", *, kind: str = "asyncio") -> None:
        self.loop = new_event_loop(kind)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> None:
        """Run the loop (once)."""
        if not self._thread.is_alive():
            self._thread.start()

    def call(self, work: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``work`` on the loop from another thread and wait for its result."""
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout)

    def stop(self) -> None:
        """Stop the loop, wait for its thread, and close it."""
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join()
        if not self.loop.is_closed():
            self.loop.close()


__all__ = ["EVENT_LOOPS", "LoopThread", "event_loop_kind", "new_event_loop"]
