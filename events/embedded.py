"""The relay inside the server process, for the embedded default.

The in-memory channel layer exists only in the server process and works only on the server's
event loop, so the embedded default cannot use a separate relay process. This ASGI wrapper
starts one relay thread on the first request and lends it the server's loop for group sends.
The production shape runs `manage.py relay` processes instead and leaves this off.
"""

import asyncio
import logging
import threading

from django.db import connection

from events import asyncbridge
from events.relay import DEFAULT_LINGER, Relay, RelayConfig

log = logging.getLogger("events.relay")


class EmbeddedRelay:
    def __init__(self, app, *, config: RelayConfig | None = None) -> None:
        self.app = app
        self.config = config or RelayConfig(poll_interval=0.5, linger=DEFAULT_LINGER)
        self.stop = threading.Event()
        self._started = False
        self._lock = threading.Lock()

    async def __call__(self, scope, receive, send):
        if not self._started:
            self._start(asyncio.get_running_loop())
        return await self.app(scope, receive, send)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            if self._started:
                return
            asyncbridge.use_loop(loop)
            threading.Thread(target=self._run, name="embedded-relay", daemon=True).start()
            self._started = True
            log.info("embedded relay started")

    def _run(self) -> None:
        try:
            Relay(self.config, name="embedded").run_forever(self.stop)
        finally:
            connection.close()
