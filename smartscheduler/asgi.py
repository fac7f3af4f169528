"""ASGI entry point: HTTP through Django, websockets through Channels (realtime.routing).

In the embedded default the relay runs inside this process (events.embedded.EmbeddedRelay).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartscheduler.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from events.embedded import EmbeddedRelay  # noqa: E402
from realtime.auth import authenticated  # noqa: E402
from realtime.routing import websocket_urlpatterns  # noqa: E402
from smartscheduler.middleware import asgi_body_limit  # noqa: E402

application = ProtocolTypeRouter(
    {
        # An oversized body is refused before Django spools it (smartscheduler.middleware).
        "http": asgi_body_limit(django_asgi_app),
        "websocket": authenticated(URLRouter(websocket_urlpatterns)),
    }
)
if settings.EVENTS_EMBEDDED_RELAY:
    application = EmbeddedRelay(application)
