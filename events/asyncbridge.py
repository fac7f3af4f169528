"""Run coroutines (channel-layer sends) from synchronous code such as the relay.

One long-lived event loop in a daemon thread keeps channel-layer connection pools warm across
batches. In the embedded default the server's own loop is used instead (`use_loop`), because
the in-memory channel layer only works on the loop its consumers run on.

A run that takes longer than its timeout is cancelled on the loop, and `run` raises only once
the coroutine has finished cancelling (within `CANCEL_GRACE` more seconds): the caller (the
relay releasing its batch for a retry) must not send the batch again while the first sends
still run.
"""

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

# How long a timed-out coroutine may take to unwind after its cancellation (a send finishing
# its Redis round trip, a pool releasing a connection) before `run` gives up waiting.
CANCEL_GRACE = 5.0

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def use_loop(loop: asyncio.AbstractEventLoop) -> None:
    global _loop
    with _lock:
        _loop = loop


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="events-async", daemon=True).start()
            _loop = loop
        return _loop


async def _within(coro: Coroutine[Any, Any, T], timeout: float) -> T:
    # asyncio.timeout cancels the coroutine on the loop and waits for it to unwind before
    # raising TimeoutError, so nothing of it runs after this returns.
    async with asyncio.timeout(timeout):
        return await coro


def run(coro: Coroutine[Any, Any, T], *, timeout: float = 30.0) -> T:
    """Run `coro` on the bridge's loop and return its result. Raises TimeoutError after
    `timeout` seconds, once `coro` has been cancelled and has finished unwinding."""
    loop = _background_loop()
    future = asyncio.run_coroutine_threadsafe(_within(coro, timeout), loop)
    try:
        return future.result(timeout + CANCEL_GRACE)
    except concurrent.futures.TimeoutError:
        if future.done() and not future.cancelled():
            raise  # the coroutine timed out and finished cancelling: _within's TimeoutError
        # It ignores or outlasts its cancellation: cancel it again and stop waiting.
        future.cancel()
        raise TimeoutError(
            f"coroutine still running {CANCEL_GRACE:.0f}s after its {timeout:.0f}s timeout"
        ) from None
