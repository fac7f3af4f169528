"""Replays give way to the short reads of handshakes (realtime/dbthreads.py): while one is in
flight, replay reads run one at a time; otherwise on all threads but one. In a storm of a
thousand reconnects the handshakes' reads otherwise queue behind each other for the one thread
the replays leave, while daphne gives up a handshake not accepted within 5 s."""

import asyncio
import threading

import pytest
from django.conf import settings

from realtime.dbthreads import for_replays, on_websocket_threads

# The threads are the process's: a connection an earlier test left on one is closed by the
# next call there.
pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 10.0


def test_replays_use_all_threads_but_one_when_no_short_read_is_in_flight():
    together = threading.Barrier(settings.WEBSOCKET_DB_THREADS - 1, timeout=WAIT)
    replay = for_replays(together.wait)  # passes only if all of them run at once

    async def main():
        await asyncio.gather(*(replay() for _ in range(together.parties)))

    asyncio.run(main())


def test_replays_run_one_at_a_time_while_a_short_read_is_in_flight():
    short_started, short_done, go = threading.Event(), threading.Event(), threading.Event()
    started: list[int] = []

    def short_read() -> None:
        short_started.set()
        short_done.wait(WAIT)

    def replay_read(index: int) -> int:
        started.append(index)
        go.wait(WAIT)
        return index

    async def main() -> tuple[list[int], list[int]]:
        short = asyncio.create_task(on_websocket_threads(short_read)())
        await asyncio.to_thread(short_started.wait, WAIT)
        replays = [
            asyncio.create_task(for_replays(replay_read)(index))
            for index in range(settings.WEBSOCKET_DB_THREADS - 1)
        ]
        while not started:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # room for the others to start, if they were let
        alone = list(started)
        go.set()
        short_done.set()
        await short
        return alone, await asyncio.gather(*replays)

    alone, done = asyncio.run(main())
    assert len(alone) == 1
    assert done == list(range(settings.WEBSOCKET_DB_THREADS - 1))
