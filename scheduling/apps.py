from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    name = "scheduling"

    def ready(self) -> None:
        from events.handlers import subscribe
        from scheduling.handlers import RANKING_EVENTS, SCHEDULE_EVENTS, rerank, warm_availability

        # Redis-only or self-contained effects: run outside the relay's handler transaction.
        subscribe(
            "scheduling.availability_cache", SCHEDULE_EVENTS, warm_availability, transactional=False
        )
        subscribe("scheduling.rerank", RANKING_EVENTS, rerank, transactional=False)
