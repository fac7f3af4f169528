from django.apps import AppConfig
from django.conf import settings
from django.urls import register_converter


class EventsConfig(AppConfig):
    name = "events"
    verbose_name = "Event log"

    def ready(self) -> None:
        from events.api.converters import IdConverter

        # `<id:pk>` in every app's URLs: before any URLconf is loaded.
        register_converter(IdConverter, "id")

        # The external message bus (docs/bus.md) is off unless EVENT_BUS_URL is set.
        if settings.EVENT_BUS_URL:
            from events.bus import subscribe_bus

            subscribe_bus()
