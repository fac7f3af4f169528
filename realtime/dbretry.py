"""Bounded retries for the database reads of a websocket handshake.

A handshake reads PostgreSQL only (the session or token, the user's groups, a resume). During
a short PostgreSQL blip (a restart, a failover, a terminated session) it waits a little and
tries again instead of failing at once: a few attempts, about three seconds in all, after which
the error stands and the consumer closes the socket with `unavailable` (4503).
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from django.db import InterfaceError, OperationalError

from realtime.link import jittered

log = logging.getLogger("realtime")
T = TypeVar("T")

RETRY_DELAYS = (0.1, 0.25, 0.5, 1.0, 1.5)  # seconds before each further attempt


async def with_db_retries(call: Callable[[], Awaitable[T]]) -> T:
    """`await call()`, again after each of RETRY_DELAYS while the database is unreachable.
    `call` goes through database_sync_to_async, which closes a broken connection before it
    runs, so each attempt starts on a sound one."""
    for delay in RETRY_DELAYS:
        try:
            return await call()
        except (OperationalError, InterfaceError) as exc:
            log.info("database unavailable during a handshake (%s); retrying", exc)
            await asyncio.sleep(jittered(delay))
    return await call()
