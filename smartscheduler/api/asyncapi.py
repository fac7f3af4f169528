"""`GET /api/asyncapi`: the AsyncAPI 3.0 document of the websocket streams, the message bus and
the webhooks. Public, like `GET /api/schema`: it describes shapes, never data."""

from django.http import JsonResponse
from django.views.decorators.http import require_safe

from events.asyncapi import document
from realtime.asyncapi import websocket_parts


@require_safe
def asyncapi_view(request):
    parts = websocket_parts(host=request.get_host(), secure=request.is_secure())
    return JsonResponse(document(**parts), json_dumps_params={"indent": 2})
