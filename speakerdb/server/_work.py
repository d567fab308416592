"""Library calls on worker threads, a bounded number at a time.

The event loop only reads requests and writes answers; decoding, embedding and the
database run on ``workers`` threads. A call that finds every worker busy waits in a
queue of ``queue`` places; when that is full, or the call takes over its timeout,
the request is answered 503 with ``Retry-After`` (:class:`ServiceBusy`) rather
than piling up. The context (the key that asked, for the audit log) goes with the
call to its thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ..errors import ServiceBusy

__all__ = ["Workers"]

T = TypeVar("T")


class Workers:
    """A pool of ``size`` threads with ``queue`` waiting places."""

    def __init__(self, size: int, queue: int, timeout_s: float) -> None:
        self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="speakerdb-worker")
        self._places = size + queue
        self._timeout_s = timeout_s
        self._taken = 0  # only the event loop's thread changes it

    @property
    def busy(self) -> int:
        """Calls running or waiting."""
        return self._taken

    async def run(self, func: Callable[..., T], *args: object) -> T:
        """``func(*args)`` on a worker thread, in this task's context."""
        if self._taken >= self._places:
            raise ServiceBusy(
                f"all {self._places} places of the service's work queue are taken; "
                "retry in a moment"
            )
        self._taken += 1
        call = functools.partial(contextvars.copy_context().run, func, *args)
        future = asyncio.get_running_loop().run_in_executor(self._pool, call)
        # The place is freed when the thread is done, even if the request gave up on it.
        future.add_done_callback(self._free)
        try:
            return await asyncio.wait_for(asyncio.shield(future), self._timeout_s)
        except asyncio.TimeoutError:
            raise ServiceBusy(
                f"the request took over {self._timeout_s:.0f} s; retry in a moment"
            ) from None

    def _free(self, _: object) -> None:
        self._taken -= 1

    def close(self) -> None:
        """Finish the calls under way, then stop the threads."""
        self._pool.shutdown(wait=True, cancel_futures=True)
