"""Prometheus metrics for the relay and the EventLog, per subscriber.

Counters and the step histogram live in the process that runs the relay (`relay --metrics-port`
exposes them; in the embedded default the server process runs the relay, so `/metrics` has
them). The EventLog gauges are read from the database at scrape time (events.operations), so
any web process reports the truth whichever relay did the work, at a cost that does not grow
with the log.
"""

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

DELIVERED = Counter(
    "smartscheduler_events_delivered", "Events a subscriber handled", ["subscriber"]
)
FAILURES = Counter(
    "smartscheduler_event_delivery_failures", "Failed deliveries to a subscriber", ["subscriber"]
)
DEAD = Counter(
    "smartscheduler_events_dead", "Events marked dead for a subscriber by this process",
    ["subscriber"],
)  # fmt: skip
STEP_SECONDS = Histogram(
    "smartscheduler_relay_step_seconds",
    "Time for one subscriber to read, deliver and move past one batch",
    ["subscriber"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


# The per-subscriber gauges, smartscheduler_subscriber_<name>, and their help.
SUBSCRIBER_GAUGES = {
    "pending": "Events a subscriber has not handled yet (new ones and retries)",
    "retrying": "Failed deliveries waiting for a retry",
    "dead": "Events dead for a subscriber",
    "lag_sequences": "Published sequences after the subscriber's position",
    "oldest_pending_age_seconds": (
        "Age of the oldest event the subscriber has not handled (0 when none)"
    ),
    "outage": "1 while the subscriber's store is down",
}


class EventLogCollector(Collector):
    def collect(self):
        from events.operations import status

        state = status()
        unpublished = GaugeMetricFamily(
            "smartscheduler_events_unpublished", "Committed events not yet given a sequence"
        )
        unpublished.add_metric([], state.unpublished)
        head = GaugeMetricFamily("smartscheduler_events_head", "The highest published sequence")
        head.add_metric([], state.head)
        families = {
            name: GaugeMetricFamily(f"smartscheduler_subscriber_{name}", doc, labels=["subscriber"])
            for name, doc in SUBSCRIBER_GAUGES.items()
        }
        for sub in state.subscribers:
            age = sub.oldest_pending_age
            values = {
                "pending": sub.pending + sub.retrying,
                "retrying": sub.retrying,
                "dead": sub.dead,
                "lag_sequences": sub.lag,
                "oldest_pending_age_seconds": age.total_seconds() if age else 0.0,
                "outage": 1 if sub.outage_since else 0,
            }
            for name, family in families.items():
                family.add_metric([sub.name], values[name])
        yield unpublished
        yield head
        yield from families.values()


def registry_with_event_log() -> CollectorRegistry:
    """The default registry (this process's counters) plus the EventLog gauges."""
    from prometheus_client import REGISTRY

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Forward(REGISTRY))
    registry.register(EventLogCollector())
    return registry


class _Forward(Collector):
    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self):
        yield from self.source.collect()
