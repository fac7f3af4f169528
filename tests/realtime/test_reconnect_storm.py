"""A reconnect storm against a real daphne: a hundred clients resuming at once, each some
events behind, all get their handshake and their replay, while HTTP keeps answering
(docs/realtime.md, "Reconnect storms").

First with every replay held up by the database (another PostgreSQL session locks the
EventLog's group index table, which a resume reads and /healthz does not): the handshakes are
still accepted, on the thread the replays leave free, and only WEBSOCKET_DB_THREADS - 1
database sessions wait; then, unheld, rounds of reconnects with HTTP timed throughout.
"""

import asyncio
import json
import statistics
import threading
import time

import pytest
import websockets

from events.models import Event
from events.publisher import publish_all
from tests.conftest import make_user, token_for
from tests.events.support import create_jobs
from tests.realtime.test_storms import replays_held, waiting_on_locks
from tests.support import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

CLIENTS = 100
BEHIND = 50  # events each client missed
ROUNDS = 3
PROBED = "/api/contractors"


class HttpProbe:
    """GETs the contractor list (a sync API view that reads the database) in a loop on a
    thread of its own, timing each answer.

    Not /healthz: its channel-layer probe waits without a timeout for a message that a burst
    of disconnecting sockets can lose (docs/realtime.md, "Reconnect storms")."""

    def __init__(self, server, token: str) -> None:
        self.server, self.headers = server, {"Authorization": f"Token {token}"}
        self.answers: list[tuple[int, float]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                self.answers.append(self.server.get(PROBED, timeout=30, headers=self.headers))
            except OSError as exc:  # no answer in time, or the connection refused or cut
                print(f"HTTP request failed after {time.monotonic() - started:.1f} s: {exc!r}")
                self.answers.append((type(exc).__name__, time.monotonic() - started))
            time.sleep(0.05)

    def __enter__(self) -> "HttpProbe":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(60)

    def summary(self) -> str:
        seconds = sorted(s for _, s in self.answers)
        p95 = seconds[int(len(seconds) * 0.95) - 1] if len(seconds) >= 20 else seconds[-1]
        return (
            f"{len(seconds)} requests, p50 {statistics.median(seconds) * 1000:.0f} ms, "
            f"p95 {p95 * 1000:.0f} ms, max {seconds[-1] * 1000:.0f} ms"
        )


async def resume(url: str, opened: asyncio.Queue | None = None) -> tuple[list[int], dict]:
    """One client's reconnect: handshake, then its replay up to `replayed`."""
    async with websockets.connect(url, open_timeout=20, max_size=None) as ws:
        if opened is not None:
            opened.put_nowait(True)
        sequences = []
        while (frame := json.loads(await asyncio.wait_for(ws.recv(), 60)))["kind"] == "event":
            sequences.append(frame["event"]["sequence"])
        return sequences, frame


async def storm(url: str, *, held=None) -> list[tuple[list[int], dict]]:
    """CLIENTS reconnects at once: their results, or with `held` (replays held up by the
    database) their tasks once every handshake is accepted."""
    opened: asyncio.Queue = asyncio.Queue()
    clients = [asyncio.create_task(resume(url, opened)) for _ in range(CLIENTS)]
    if held is not None:
        for _ in range(CLIENTS):
            await asyncio.wait_for(opened.get(), 30)  # every handshake accepted
        assert not any(c.done() for c in clients)  # and every replay still held
        return clients
    return await asyncio.gather(*clients)


@pytest.fixture
def log_and_url(transactional_db):
    create_jobs(BEHIND + 10)
    publish_all()
    log = list(Event.objects.order_by("sequence").values_list("sequence", flat=True))
    token = token_for(make_user("ada", role="dispatcher"))
    return log, token, f"/ws/dispatch/?token={token}&after={log[-BEHIND - 1]}"


def test_a_hundred_reconnects_at_once_get_their_replays_while_http_answers(
    daphne_server, log_and_url
):
    log, token, path = log_and_url
    server = daphne_server(WEBSOCKET_MAX_CONNECTIONS_PER_USER=str(CLIENTS))
    url = server.ws_url(path)
    missed = (log[-BEHIND:], {"kind": "replayed", "through": log[-1]})

    async def held_storm() -> list:
        with replays_held() as session:
            clients = await storm(url, held=session)
            await asyncio.to_thread(
                wait_until, lambda: waiting_on_locks(session) == 3, timeout=10, message="3"
            )
            await asyncio.sleep(0.5)
            assert waiting_on_locks(session) == 3  # WEBSOCKET_DB_THREADS (4) - 1
            headers = {"Authorization": f"Token {token}"}
            status, seconds = await asyncio.to_thread(server.get, PROBED, 30, headers)
            assert (status, seconds < 2) == (200, True), seconds
        return await asyncio.gather(*clients)

    results = asyncio.run(held_storm())
    assert results == [missed] * CLIENTS

    with HttpProbe(server, token) as idle:
        time.sleep(3)
    print(f"HTTP without a storm: {idle.summary()}")
    with HttpProbe(server, token) as probe:
        for _ in range(ROUNDS):
            assert asyncio.run(storm(url)) == [missed] * CLIENTS
    print(f"HTTP during {ROUNDS} storms of {CLIENTS} reconnects: {probe.summary()}")
    assert {status for status, _ in probe.answers} == {200}
    assert max(seconds for _, seconds in probe.answers) < 5
    assert "Exception inside application" not in server.process.output()
