"""The message bus a scenario's relay publishes to: the machine's RabbitMQ (never reconfigured),
with an exchange of the run's own, deleted at the end; or an address where nothing listens, for
runs with the bus down. Imported without Django set up."""

import contextlib
import os

from devtools.processes import free_port

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"


def exchange_name(scenario: str) -> str:
    return f"bench.{os.getpid()}.{scenario}"


def bus_env(scenario: str, *, down: bool = False) -> dict[str, str]:
    """EVENT_BUS_URL and EVENT_BUS_EXCHANGE for the relay: RabbitMQ, or (down) a free port of
    this machine, so every connection is refused for the whole run."""
    url = f"amqp://guest:guest@127.0.0.1:{free_port()}//" if down else RABBITMQ_URL
    return {"EVENT_BUS_URL": url, "EVENT_BUS_EXCHANGE": exchange_name(scenario)}


def delete_exchange(scenario: str) -> None:
    """Remove the run's exchange from RabbitMQ (best effort: the broker may be gone)."""
    import kombu

    with contextlib.suppress(Exception), kombu.Connection(RABBITMQ_URL, connect_timeout=5) as conn:
        kombu.Exchange(exchange_name(scenario), type="topic")(conn.default_channel).delete()
