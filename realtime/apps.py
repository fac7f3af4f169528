from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"

    def ready(self) -> None:
        from events.handlers import ALL_TYPES, subscribe
        from realtime.broadcast import broadcast

        subscribe("realtime.broadcast", ALL_TYPES, broadcast, transactional=False)
