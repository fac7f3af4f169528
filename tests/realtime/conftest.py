"""Fixtures for the websocket tests: the configured channel layer, streams that always close,
and a real daphne.

The consumers run on channels-redis exactly as smartscheduler.settings_test configures it (the
shared Redis, this run's key prefix, `socket_timeout: None`); only the layer instance is new for
each test.
"""

import copy
import json
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.db import connections

from smartscheduler.asgi import application
from tests.conftest import make_user
from tests.contractors.factories import ContractorFactory
from tests.support import Process, free_port, subprocess_env, wait_until

WAIT = 5.0  # seconds: bound on every wait for a frame that must arrive


@pytest.fixture
def contractor_users(db) -> list[User]:
    """Two contractors' logins."""
    return [
        make_user(f"worker{n}", role="contractor", contractor=ContractorFactory()) for n in (1, 2)
    ]


@pytest.fixture
def private_layer(own_redis, settings):
    """The configured layer on a private redis-server: `private_layer(**options)` overrides
    layer options (say, a short `group_expiry`) and returns the CONFIG in use."""

    def configure(**options) -> dict:
        layers = copy.deepcopy(settings.CHANNEL_LAYERS)
        assert layers["default"]["BACKEND"] == "realtime.layers.RedisChannelLayer"
        config = layers["default"]["CONFIG"]
        [host] = config["hosts"]
        host["address"] = own_redis.url
        config.update(options)
        settings.CHANNEL_LAYERS = layers  # Channels drops its cached layers on setting_changed
        return config

    return configure


def assert_error(frame: dict, code: str, case: str = "") -> None:
    """`frame` is an error frame with this code and a message (`case`: what was sent)."""
    assert frame.keys() == {"kind", "code", "message"}, (case, frame)
    assert (frame["kind"], frame["code"]) == ("error", code), (case, frame)
    assert isinstance(frame["message"], str), (case, frame)
    assert frame["message"], (case, frame)


@dataclass
class Stream:
    """One websocket client of `smartscheduler.asgi.application`."""

    communicator: WebsocketCommunicator
    connected: bool = False
    seen: list[dict] = field(default_factory=list)

    async def connect(self) -> tuple[bool, int | str | None]:
        result = await self.communicator.connect(timeout=WAIT)
        self.connected = True  # a refused handshake too leaves an application to stop
        return result

    async def frame(self, timeout: float = WAIT) -> dict:
        return await self.communicator.receive_json_from(timeout=timeout)

    async def event(self, timeout: float = WAIT) -> dict:
        """The next frame, which must be an event; returns its envelope (and remembers it)."""
        frame = await self.frame(timeout)
        assert frame["kind"] == "event", frame
        self.seen.append(frame["event"])
        return frame["event"]

    async def events(self, count: int) -> list[dict]:
        return [await self.event() for _ in range(count)]

    async def nothing(self, timeout: float = 0.5) -> bool:
        return await self.communicator.receive_nothing(timeout=timeout)

    async def close_code(self) -> int | None:
        """The next output must be the server closing the socket; returns its code."""
        message = await self.communicator.receive_output(timeout=WAIT)
        assert message["type"] == "websocket.close", message
        return message.get("code")

    async def send(self, text: str | None = None, *, data: bytes | None = None) -> None:
        await self.communicator.send_to(text_data=text, bytes_data=data)

    async def send_json(self, frame) -> None:
        await self.send(json.dumps(frame))

    async def ping(self) -> dict:
        await self.send_json({"kind": "ping"})
        return await self.frame()

    async def disconnect(self) -> None:
        if self.connected:
            self.connected = False
            await self.communicator.disconnect(timeout=WAIT)


@pytest_asyncio.fixture
async def streams(channel_layer):
    """`await streams.open(path, headers=...)` connects a client; all are closed at teardown."""
    opened: list[Stream] = []

    class Streams:
        @staticmethod
        def client(path: str, headers: list[tuple[bytes, bytes]] | None = None) -> Stream:
            stream = Stream(WebsocketCommunicator(application, path, headers=headers))
            opened.append(stream)
            return stream

        @classmethod
        async def open(cls, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> Stream:
            """A client whose handshake must be accepted and pass. Without `after=`, a ping
            is answered once the consumer has signed in and joined its groups (the accept
            comes before both); with it, the test reads the replay up to `replayed`."""
            stream = cls.client(path, headers)
            assert await stream.connect() == (True, None)
            if "after=" not in path:
                assert await stream.ping() == {"kind": "pong"}
            return stream

    try:
        yield Streams
    finally:
        errors = []
        for stream in opened:
            try:
                await stream.disconnect()
            except Exception as exc:  # close the others all the same
                errors.append(exc)
        # The consumers and the tests use the database from asgiref's sync thread; close that
        # thread's connection so the test database can be flushed and dropped.
        await database_sync_to_async(connections.close_all)()
        if errors:
            raise errors[0]


# --- a real daphne -----------------------------------------------------------------------------


@dataclass
class Daphne:
    """A daphne process serving `smartscheduler.asgi:application` on this run's database and
    Redis (the shared one, this run's key prefix)."""

    port: int
    process: Process

    def ws_url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def get(self, path: str, timeout: float = 30, headers: dict | None = None) -> tuple[int, float]:
        """(status, seconds) of a GET."""
        url = f"http://127.0.0.1:{self.port}{path}"
        request = urllib.request.Request(url, headers=headers or {})
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=timeout):
                status = 200
        except urllib.error.HTTPError as exc:
            status = exc.code
        return status, time.monotonic() - started

    def memory_kib(self, field: str = "VmRSS") -> int:
        """VmRSS (resident now) or VmHWM (the most it has been resident) of the process."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
        raise AssertionError(f"no {field} for daphne")


@pytest.fixture
def daphne_server(transactional_db, tmp_path):
    """`daphne_server(**environment)` starts a daphne (stopped at teardown, its log printed)."""
    started: list[Process] = []

    def start(**environment: str) -> Daphne:
        port = free_port()
        env = subprocess_env(redis_url=django_settings.REDIS_URL)
        env.update(environment)
        process = Process(
            [str(Path(sys.executable).parent / "daphne"), "-b", "127.0.0.1", "-p", str(port),
             "smartscheduler.asgi:application"],
            log_path=tmp_path / f"daphne-{port}.log",
            env=env,
        )  # fmt: skip
        started.append(process)
        server = Daphne(port=port, process=process)

        def answering() -> bool:
            assert process.alive(), process.describe()
            try:
                return server.get("/healthz", timeout=5)[0] == 200
            except OSError:
                return False

        wait_until(answering, timeout=30, message=process.describe, interval=0.2)
        return server

    try:
        yield start
    finally:
        for process in started:
            process.close(grace=5)
            print(process.describe(tail=60))
