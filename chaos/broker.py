"""The chaos run's own RabbitMQ (devtools.rabbitmq: a node private to the run, node name
`chaos_<pid>@localhost`) and its audit queue.

The audit queue: a durable queue bound to the bus exchange for every routing key, declared
before the relays publish anything, and read after the run. Messages are persistent and the
relay waits for the broker's confirms, so what it confirmed survives a broker crash; the run
checks that the queue got every event at least once.
"""

import json
from collections import Counter
from pathlib import Path

from devtools.rabbitmq import RabbitMQServer

EXCHANGE = "smartscheduler.events"  # the product's default EVENT_BUS_EXCHANGE
AUDIT_QUEUE = "chaos.audit"


class Broker(RabbitMQServer):
    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, name="chaos")

    # --- the audit queue ------------------------------------------------------------------------

    def declare_audit_queue(self) -> None:
        import kombu

        exchange = kombu.Exchange(EXCHANGE, type="topic", durable=True)
        queue = kombu.Queue(AUDIT_QUEUE, exchange=exchange, routing_key="#", durable=True)
        with kombu.Connection(self.url, connect_timeout=5) as conn:
            queue(conn.default_channel).declare()

    def read_audit_queue(self) -> Counter[str]:
        """Every message of the audit queue, taken off it: event id -> times received."""
        import kombu

        received: Counter[str] = Counter()
        with kombu.Connection(self.url, connect_timeout=5) as conn:
            channel = conn.default_channel
            while True:
                message = channel.basic_get(AUDIT_QUEUE, no_ack=True)
                if message is None:
                    break
                received[json.loads(message.body)["id"]] += 1
        return received
