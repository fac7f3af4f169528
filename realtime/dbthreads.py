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
new sign-ins (a client waiting for its own would give up and come back). And while any of
those short reads is in flight, replay reads run one at a time: in a storm of a thousand
reconnects at once, the handshakes' reads otherwise queue for the one thread the replays
leave, and behind each other. With the handshakes first, the replays widen again once they
are in. (The handshake is accepted before its read, realtime/consumers.py: daphne drops one
that is not accepted within its timeout, 5 s by default.)

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


class _Loop:
    """This event loop's (this process's) share of the threads: the replays' slots, and how
    many replay reads and short reads are on the threads (`changed` when either falls)."""

    def __init__(self) -> None:
        self.replay_slots = asyncio.Semaphore(max(1, settings.WEBSOCKET_DB_THREADS - 1))
        self.changed = asyncio.Condition()
        self.replays = 0
        self.short_reads = 0

    async def fell(self) -> None:
        async with self.changed:
            self.changed.notify_all()


_loops: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Loop]" = weakref.WeakKeyDictionary()


def _this_loop() -> _Loop:
    loop = asyncio.get_running_loop()
    with _lock:
        if loop not in _loops:
            _loops[loop] = _Loop()
        return _loops[loop]


async def _on_threads(func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    run = DatabaseSyncToAsync(func, thread_sensitive=False, executor=executor())
    return await run(*args, **kwargs)


def on_websocket_threads(func: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """`database_sync_to_async`, on the websocket database threads instead of the sync views'
    thread; a short read, ahead of the replays (see the module)."""

    @functools.wraps(func)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        shared = _this_loop()
        shared.short_reads += 1
        try:
            return await _on_threads(func, *args, **kwargs)
        finally:
            shared.short_reads -= 1
            if not shared.short_reads:
                await shared.fell()

    return call


def for_replays(func: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """On the websocket threads, at most all but one of them, and one at a time while short
    reads are in flight (see the module)."""

    @functools.wraps(func)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        shared = _this_loop()
        async with shared.replay_slots:
            async with shared.changed:
                await shared.changed.wait_for(lambda: not shared.short_reads or not shared.replays)
                shared.replays += 1
            try:
                return await _on_threads(func, *args, **kwargs)
            finally:
                shared.replays -= 1
                await shared.fell()

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
