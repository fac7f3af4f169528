from django.urls import path

from realtime.consumers import ContractorStream, DispatchStream

websocket_urlpatterns = [
    path("ws/dispatch/", DispatchStream.as_asgi()),
    path("ws/contractor/", ContractorStream.as_asgi()),
]
