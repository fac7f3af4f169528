"""A websocket client that does not read holds a bounded backlog in a real daphne, and is closed
(4408 `slow_consumer`) once it has taken nothing for WEBSOCKET_SEND_TIMEOUT_SECONDS; one that
only pauses gets everything once it reads again (realtime/backpressure.py, docs/realtime.md).

The clients that do not read open their sockets with a tiny receive window and a small
segment size, so the kernel holds little on either side and what a client does not take stays
in daphne, where a replay sent without waiting used to pile up.
"""

import json
import socket
import time
import urllib.request
from contextlib import ExitStack

import pytest
import websockets.sync.client
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed

from events.models import Event
from events.publisher import publish_all
from tests.conftest import make_user, token_for
from tests.events.support import create_jobs
from tests.support import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

REPLAYED_EVENTS = 3000
NOT_READING = 40
SEND_TIMEOUT = 3  # seconds (WEBSOCKET_SEND_TIMEOUT_SECONDS of the server under test)
SLOW_LINE = "closing a websocket whose client read nothing"


@pytest.fixture
def event_log(transactional_db) -> list[int]:
    """REPLAYED_EVENTS published JobCreated events (recorded through the service), their
    sequences."""
    for _ in range(REPLAYED_EVENTS // 500):
        create_jobs(500)
    publish_all()
    return list(Event.objects.order_by("sequence").values_list("sequence", flat=True))


@pytest.fixture
def resume_path(transactional_db) -> str:
    """A dispatcher's stream resuming from the start of the log."""
    return f"/ws/dispatch/?token={token_for(make_user('ada', role='dispatcher'))}&after=0"


def tiny_window(port: int) -> socket.socket:
    """A connected socket that advertises a receive window and segments of a few hundred
    bytes: what the client does not read stays on the server's side."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
    sock.connect(("127.0.0.1", port))
    return sock


def counter(server, name: str) -> float:
    """A counter of the server process, from its /metrics."""
    with urllib.request.urlopen(server.ws_url("/metrics").replace("ws:", "http:")) as response:
        for family in text_string_to_metric_families(response.read().decode()):
            for sample in family.samples:
                if sample.name == f"{name}_total":
                    return sample.value
    raise AssertionError(f"no {name} at /metrics")


def connect(server, path: str, **options):
    return websockets.sync.client.connect(
        server.ws_url(path), sock=tiny_window(server.port), open_timeout=15, **options
    )


def read_replay(ws) -> tuple[list[int], dict, int]:
    """(sequences of the events, the `replayed` frame, bytes received)."""
    sequences, size = [], 0
    while True:
        text = ws.recv(timeout=30)
        size += len(text)
        frame = json.loads(text)
        if frame["kind"] != "event":
            return sequences, frame, size
        sequences.append(frame["event"]["sequence"])


def test_clients_that_read_nothing_hold_a_bounded_backlog_and_are_closed(
    daphne_server, event_log, resume_path
):
    server = daphne_server(
        WEBSOCKET_SEND_TIMEOUT_SECONDS=str(SEND_TIMEOUT),
        WEBSOCKET_MAX_CONNECTIONS_PER_USER=str(NOT_READING + 1),
    )
    with connect(server, resume_path) as reader:  # a client that reads: warms the server up
        sequences, replayed, replay_bytes = read_replay(reader)
    assert sequences == event_log
    assert replayed == {"kind": "replayed", "through": event_log[-1]}
    before = server.memory_kib("VmHWM")

    with ExitStack() as stack:
        stuck = [
            stack.enter_context(connect(server, resume_path, max_queue=1))
            for _ in range(NOT_READING)
        ]
        wait_until(
            lambda: server.process.output().count(SLOW_LINE) == NOT_READING,
            timeout=60,
            message=lambda: f"{server.process.output().count(SLOW_LINE)} closed as slow",
        )
        grown = server.memory_kib("VmHWM") - before
        unsent = NOT_READING * replay_bytes // 1024
        print(f"daphne grew by at most {grown} KiB; the replays were {unsent} KiB in all")
        # Without flow control daphne buffered every replay whole (it grew by more than
        # `unsent`); now a stuck socket holds a page and a buffer (measured: about a fifth).
        assert grown < unsent / 3
        assert counter(server, "smartscheduler_websocket_slow_consumer_closes") == NOT_READING

        # The server dropped them: each client reads what reached it, then the closed socket.
        deadline = time.monotonic() + 30
        for ws in stuck:
            with pytest.raises(ConnectionClosed):
                while True:
                    ws.recv(timeout=max(deadline - time.monotonic(), 0.1))


def test_a_client_that_pauses_gets_its_whole_replay_once_it_reads(
    daphne_server, event_log, resume_path
):
    server = daphne_server(WEBSOCKET_SEND_TIMEOUT_SECONDS="10")
    with connect(server, resume_path, max_queue=1) as ws:
        time.sleep(2)  # the replay fills the buffers and waits
        sequences, replayed, _ = read_replay(ws)
        assert sequences == event_log
        assert replayed == {"kind": "replayed", "through": event_log[-1]}
        ws.send('{"kind": "ping"}')
        assert json.loads(ws.recv(timeout=10)) == {"kind": "pong"}
    assert counter(server, "smartscheduler_websocket_send_waits") > 0  # it did wait for the client
    assert counter(server, "smartscheduler_websocket_slow_consumer_closes") == 0
    assert SLOW_LINE not in server.process.output()
