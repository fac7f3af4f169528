"""Websockets of a real daphne process through store faults: a Redis restart is a pause,
not a disconnect (realtime/link.py), and a handshake through a short PostgreSQL blip waits and
succeeds (realtime/dbretry.py), or, with PostgreSQL down for longer, is told to try again.

daphne reaches a private redis-server and the test database through a TCP proxy the test
controls; the proxy refusing connections (and cutting the open ones) is the PostgreSQL blip,
as while it restarts. The server runs without its connection pool (DB_POOL_MAX_SIZE=0), so
every handshake opens a database connection of its own.
"""

import asyncio
import json
import sys
import threading
from pathlib import Path

import pytest
import websockets.sync.client
from django.db import connection

from contractors.services import Location
from events.models import Event
from events.publisher import publish_all
from events.relay import Outage, Relay
from scheduling.services import create_job
from tests.conftest import make_user, next_weekday, token_for
from tests.support import Process, free_port, subprocess_env, wait_until


class TcpProxy:
    """Forwards 127.0.0.1:port to the database's port; `down()` refuses new connections and
    cuts the open ones, `up()` accepts again."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.port = free_port()
        self.target = (target_host, target_port)
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    async def _pipe(self, reader, writer) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def _serve(self, client_reader, client_writer) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        self.writers |= {client_writer, server_writer}
        await asyncio.gather(
            self._pipe(client_reader, server_writer), self._pipe(server_reader, client_writer)
        )
        self.writers -= {client_writer, server_writer}

    async def _up(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _down(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        for writer in list(self.writers):
            writer.transport.abort()

    def up(self) -> None:
        self._run(self._up())

    def down(self) -> None:
        self._run(self._down())

    def close(self) -> None:
        self.down()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def proxy():
    settings = connection.settings_dict
    server = TcpProxy(settings["HOST"] or "127.0.0.1", int(settings["PORT"] or 5432))
    server.up()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def daphne(transactional_db, tmp_path, proxy, own_redis, private_layer):
    private_layer()  # the relay of this test broadcasts on the server's Redis
    port = free_port()
    env = subprocess_env(redis_url=own_redis.url)
    database = connection.settings_dict
    env["DATABASE_URL"] = f"postgres://{database['USER']}@127.0.0.1:{proxy.port}/{database['NAME']}"
    if database["PASSWORD"]:
        env["PGPASSWORD"] = database["PASSWORD"]
    env["DB_POOL_MAX_SIZE"] = "0"
    server = Process(
        [str(Path(sys.executable).parent / "daphne"), "-b", "127.0.0.1", "-p", str(port),
         "smartscheduler.asgi:application"],
        log_path=tmp_path / "daphne.log",
        env=env,
    )  # fmt: skip

    def listening() -> bool:
        assert server.alive(), server.describe()
        try:
            with websockets.sync.client.connect(f"ws://127.0.0.1:{port}/ws/dispatch/") as ws:
                return json.loads(ws.recv(timeout=5))["code"] == "not_authenticated"
        except OSError:
            return False

    try:
        wait_until(listening, timeout=30, message=server.describe, interval=0.2)
        yield SimpleServer(port=port, process=server)
    finally:
        server.close(grace=5)
        print(server.describe(tail=80))


class SimpleServer:
    def __init__(self, *, port: int, process: Process) -> None:
        self.port, self.process = port, process


def dispatcher_url(server: "SimpleServer") -> str:
    user = make_user("ada", role="dispatcher")
    return f"ws://127.0.0.1:{server.port}/ws/dispatch/?token={token_for(user)}"


def record_job() -> Event:
    """A job created through the service; its JobCreated event, published (given its
    sequence, as the relay's publisher does right after commit)."""
    job = create_job(
        type="tile",
        location=Location(lat=34.05, lng=-118.24),
        desired_date=next_weekday(1),
        duration_minutes=120,
        required_skills=["tile"],
    )
    publish_all()
    return Event.objects.get(type="JobCreated", aggregate_id=str(job.pk))


def drain() -> None:
    """The relay's pass; its first send after a restart may find a pooled connection the old
    server closed, and it retries the batch, as here."""
    for _ in range(3):
        try:
            Relay(name="faults").drain()
            return
        except Outage:
            continue
    Relay(name="faults").drain()


@pytest.mark.django_db(transaction=True)
def test_a_redis_restart_is_a_pause_for_a_daphne_websocket(daphne, own_redis):
    with websockets.sync.client.connect(dispatcher_url(daphne), open_timeout=15) as ws:
        before = record_job()
        drain()
        assert json.loads(ws.recv(timeout=10))["event"]["sequence"] == before.sequence

        own_redis.stop()
        assert json.loads(ws.recv(timeout=10))["kind"] == "degraded"
        during = record_job()
        ws.send('{"kind": "ping"}')
        assert json.loads(ws.recv(timeout=10)) == {"kind": "pong"}

        own_redis.start()
        frames = []
        while not frames or frames[-1]["kind"] != "recovered":
            frames.append(json.loads(ws.recv(timeout=15)))
        replayed = {f["event"]["sequence"] for f in frames if f["kind"] == "event"}
        assert during.sequence in replayed
        assert frames[-1] == {"kind": "recovered", "through": during.sequence}

        after = record_job()
        drain()
        live = {json.loads(ws.recv(timeout=10))["event"]["sequence"] for _ in range(2)}
        assert live == {during.sequence, after.sequence}
    assert "Exception inside application" not in daphne.process.output()


@pytest.mark.django_db(transaction=True)
def test_a_handshake_during_a_database_blip_waits_and_succeeds(daphne, proxy):
    url = dispatcher_url(daphne)

    proxy.down()
    threading.Timer(1.0, proxy.up).start()  # PostgreSQL is back after a second
    with websockets.sync.client.connect(url, open_timeout=15) as ws:
        # Accepted at once; the ping is answered once the handshake's reads are through.
        ws.send(json.dumps({"kind": "ping"}))
        assert json.loads(ws.recv(timeout=15)) == {"kind": "pong"}
        assert "database unavailable during a handshake" in daphne.process.output()
        event = record_job()
        drain()
        frame = json.loads(ws.recv(timeout=10))
    assert frame["kind"] == "event", frame
    assert frame["event"]["sequence"] == event.sequence


@pytest.mark.django_db(transaction=True)
def test_a_handshake_while_the_database_stays_down_is_told_to_try_again_later(daphne, proxy):
    """Past the retries (about three seconds) the accepted socket gets `unavailable` and
    4503, not a server error; the next handshake, with the database back, streams."""
    url = dispatcher_url(daphne)

    proxy.down()
    try:
        with websockets.sync.client.connect(url, open_timeout=15) as ws:
            frame = json.loads(ws.recv(timeout=15))
            with pytest.raises(websockets.ConnectionClosed):
                ws.recv(timeout=5)
    finally:
        proxy.up()
    assert (frame["kind"], frame["code"]) == ("error", "unavailable"), frame
    assert ws.close_code == 4503
    with websockets.sync.client.connect(url, open_timeout=15) as ws:
        ws.send(json.dumps({"kind": "ping"}))
        assert json.loads(ws.recv(timeout=15)) == {"kind": "pong"}
    assert "Exception inside application" not in daphne.process.output()
