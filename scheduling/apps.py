from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    name = "scheduling"

    def ready(self) -> None:
        from events import probes
        from events.handlers import subscribe
        from scheduling.handlers import RANKING_EVENTS, SCHEDULE_EVENTS, rerank, warm_availability

        # Redis-only or self-contained effects: run outside the relay's handler transaction.
        # When Redis is down they wait (an outage), rather than spend their attempts.
        subscribe(
            "scheduling.availability_cache", SCHEDULE_EVENTS, warm_availability,
            transactional=False, probe=probes.cache_store,
        )  # fmt: skip
        subscribe(
            "scheduling.rerank", RANKING_EVENTS, rerank, transactional=False,
            probe=probes.cache_store,
        )  # fmt: skip
