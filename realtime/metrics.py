"""Prometheus counters of the websockets of this server process (`/metrics`, docs/realtime.md)."""

from prometheus_client import Counter

SEND_WAITS = Counter(
    "smartscheduler_websocket_send_waits",
    "Frames that waited for their client to take more (the transport's buffer was full)",
)
SLOW_CLOSES = Counter(
    "smartscheduler_websocket_slow_consumer_closes",
    "Sockets closed with 4408 because their client took nothing for the send timeout",
)
OVER_LIMIT = Counter(
    "smartscheduler_websocket_too_many_connections",
    "Handshakes closed with 4429: the user held its limit of open sockets on this process",
)
REPLAYS_ABANDONED = Counter(
    "smartscheduler_websocket_replays_abandoned",
    "Replays stopped, their remaining pages not read, because the client's connection was lost",
)
