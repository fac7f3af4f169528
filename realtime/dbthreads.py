"""The websockets' database work runs on a bounded pool of threads of its own.

Channels' `database_sync_to_async` runs every call on asgiref's one thread-sensitive thread
per process: a reconnect storm (clients resuming with `?after=` in a loop) queued its replays
there, and every other socket's handshake (its token or session check, its groups) and the
access re-checks waited behind them, long enough for daphne to drop handshakes. Here each
server process has `WEBSOCKET_DB_THREADS` threads (default 4) for the handshake's reads, the
replays and the periodic re-check of open sockets, so a storm costs at most that many database
sessions at once. (Django's sync views run on a thread per request, never on that one thread;
what they share with the websockets is the CPU, the GIL and the connection pool, which is why
the pool of threads is small.)

Replays take at most WEBSOCKET_DB_THREADS - 1 of the threads at a time (`for_replays`; all
of them when there is only one): the last is kept for the short reads of handshakes and
account checks, so a storm of replays, or one slowed down by the database, does not hold up
new handshakes, whose clients would otherwise give up (daphne drops a handshake that is not
accepted within its timeout).

Each call is Channels' `DatabaseSyncToAsync` on this pool: `close_old_connections()` before
and after it, so a pooled connection goes back to the process's pool (DB_POOL_MAX_SIZE) as
each call ends, and a broken one is dropped before the next. A thread holds at most one
connection at a time, so the pool needs room for these threads beside the HTTP requests:
the `realtime.W001` check says so when it has not.
"""

import asyncio
import functools
import threading
import weakref
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from channels.db import DatabaseSyncToAsync
from django.conf import settings
from django.core.checks import Warning, register

P = ParamSpec("P")
R = TypeVar("R")

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_replay_slots: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]" = (
    weakref.WeakKeyDictionary()
)


def executor() -> ThreadPoolExecutor:
    """This process's websocket database threads, started on first use (WEBSOCKET_DB_THREADS
    is read then, once per process)."""
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=settings.WEBSOCKET_DB_THREADS, thread_name_prefix="websocket-db"
            )
        return _executor


def on_websocket_threads(func: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """`database_sync_to_async`, on the websocket database threads instead of the sync views'
    thread."""

    @functools.wraps(func)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        run = DatabaseSyncToAsync(func, thread_sensitive=False, executor=executor())
        return await run(*args, **kwargs)

    return call


def replay_slots() -> asyncio.Semaphore:
    """The threads replays may take at once, on this event loop (this process)."""
    loop = asyncio.get_running_loop()
    with _lock:
        if loop not in _replay_slots:
            _replay_slots[loop] = asyncio.Semaphore(max(1, settings.WEBSOCKET_DB_THREADS - 1))
        return _replay_slots[loop]


def for_replays(func: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """`on_websocket_threads`, on at most all but one of the threads (see the module)."""
    threaded = on_websocket_threads(func)

    @functools.wraps(func)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        async with replay_slots():
            return await threaded(*args, **kwargs)

    return call


@register("database")
def pool_fits_threads(app_configs=None, **kwargs) -> list[Warning]:
    """The process's connection pool must lend the websocket threads a connection each and
    still have one for the sync views, or an HTTP request waits for a replay to end."""
    database = settings.DATABASES.get("default", {})
    pool = database.get("OPTIONS", {}).get("pool")
    if not isinstance(pool, dict) or "max_size" not in pool:
        return []  # no pool (a connection per call), or psycopg_pool's own default size
    wanted = settings.WEBSOCKET_DB_THREADS + 1
    if pool["max_size"] >= wanted:
        return []
    return [
        Warning(
            f"DB_POOL_MAX_SIZE is {pool['max_size']}, below WEBSOCKET_DB_THREADS + 1 ({wanted}): "
            "websocket replays can hold every pooled connection while HTTP requests wait.",
            hint="Raise DB_POOL_MAX_SIZE or lower WEBSOCKET_DB_THREADS (docs/realtime.md).",
            id="realtime.W001",
        )
    ]
