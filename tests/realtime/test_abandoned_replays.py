"""A replay whose client has gone reads nothing more for it, in a real daphne
(docs/realtime.md, "Reconnect storms").

In a storm daphne gives up handshakes its application has not accepted within 5 s, and the
clients retry: each attempt's application still ran its whole replay into the closed
connection (daphne drops what is sent to it), so every retry cost a replay's reads and
serialisation, and the storm fed itself. Here the replays are held up by the database (a lock
on the group index table, tests/realtime/test_storms.py), every client closes meanwhile, and
once the lock goes, none of them reads a page: the three whose sequences were being read stop
before their first page, the others before reading their sequences.
"""

import json
from contextlib import ExitStack

import websockets.sync.client

from events.publisher import publish_all
from tests.conftest import make_user, token_for
from tests.events.support import create_jobs
from tests.realtime.test_backpressure import counter
from tests.realtime.test_storms import replays_held, waiting_on_locks
from tests.support import wait_until

CLIENTS = 10
ABANDONED = "smartscheduler_websocket_replays_abandoned"


def test_clients_that_left_during_a_held_replay_cost_no_page(daphne_server):
    create_jobs(150)  # more than a page (REPLAY_PAGE) of events for a dispatcher
    publish_all()
    path = f"/ws/dispatch/?token={token_for(make_user('ada', role='dispatcher'))}&after=0"
    server = daphne_server(WEBSOCKET_MAX_CONNECTIONS_PER_USER=str(CLIENTS + 1))
    # The clients close their sockets (the inner context) before the lock goes.
    with replays_held() as session, ExitStack() as clients:
        for _ in range(CLIENTS):  # accepted before their replays start
            clients.enter_context(
                websockets.sync.client.connect(server.ws_url(path), open_timeout=15)
            )
        wait_until(lambda: waiting_on_locks(session) == 3, timeout=15, message="3 replays")
    wait_until(
        lambda: counter(server, ABANDONED) == CLIENTS,
        timeout=15,
        message=lambda: f"{counter(server, ABANDONED)} of {CLIENTS} replays abandoned",
    )

    # The slots they held are free again: a client that stays gets its whole replay.
    with websockets.sync.client.connect(server.ws_url(path), open_timeout=15) as ws:
        kinds = []
        while not kinds or kinds[-1] != "replayed":
            kinds.append(json.loads(ws.recv(timeout=15))["kind"])
    assert kinds.count("event") >= 150
    assert counter(server, ABANDONED) == CLIENTS
