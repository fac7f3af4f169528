"""Run coroutines (channel-layer sends) from synchronous code such as the relay.

One long-lived event loop in a daemon thread keeps channel-layer connection pools warm across
batches. In the embedded default the server's own loop is used instead (`use_loop`), because
the in-memory channel layer only works on the loop its consumers run on.
"""

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

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


def run(coro: Coroutine[Any, Any, Any], *, timeout: float = 30.0) -> Any:
    loop = _background_loop()
    return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)
