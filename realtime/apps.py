from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"

    def ready(self) -> None:
        from events import probes
        from events.handlers import ALL_TYPES, subscribe
        from realtime import dbthreads  # noqa: F401 (registers the pool-size check)
        from realtime.broadcast import broadcast

        # Screens first: the broadcast is a subscriber of its own and waits for no handler.
        subscribe(
            "realtime.broadcast", ALL_TYPES, broadcast, transactional=False,
            probe=probes.channel_layer, linger=0.0,
        )  # fmt: skip
