"""Prometheus metrics for the relay and the EventLog.

Counters and the batch histogram live in the process that runs the relay (`relay --metrics-port`
exposes them; in the embedded default the server process runs the relay, so `/metrics` has
them). The EventLog gauges are read from the database at scrape time, so any web process
reports the truth whichever relay did the work.
"""

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from events.models import DeliveryStatus, Event

DELIVERED = Counter(
    "smartscheduler_events_delivered", "Events delivered to every handler and group", ["type"]
)
FAILURES = Counter(
    "smartscheduler_event_delivery_failures", "Handler failures while delivering", ["handler"]
)
DEAD = Counter("smartscheduler_events_dead", "Events marked dead by this process", ["type"])
BATCH_SECONDS = Histogram(
    "smartscheduler_relay_batch_seconds",
    "Time to claim, deliver and mark one batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class EventLogCollector(Collector):
    def collect(self):
        pending = GaugeMetricFamily(
            "smartscheduler_events_pending", "Events not yet delivered (including in flight)"
        )
        dead = GaugeMetricFamily("smartscheduler_events_dead_current", "Events marked dead now")
        oldest = GaugeMetricFamily(
            "smartscheduler_events_oldest_pending_age_seconds",
            "Age of the oldest pending event (0 when none): the relay lag",
        )
        by_status = GaugeMetricFamily(
            "smartscheduler_events_in_log", "EventLog rows by type and delivery status",
            labels=["type", "status"],
        )  # fmt: skip
        counts = {DeliveryStatus.PENDING: 0, DeliveryStatus.DEAD: 0}
        for row in Event.objects.values("type", "status").annotate(n=Count("sequence")):
            by_status.add_metric([row["type"], row["status"]], row["n"])
            if row["status"] in counts:
                counts[row["status"]] += row["n"]
        first = Event.objects.filter(status=DeliveryStatus.PENDING).aggregate(
            first=Min("occurred_at")
        )["first"]
        pending.add_metric([], counts[DeliveryStatus.PENDING])
        dead.add_metric([], counts[DeliveryStatus.DEAD])
        oldest.add_metric([], (timezone.now() - first).total_seconds() if first else 0.0)
        yield from (pending, dead, oldest, by_status)


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
