"""Liveness with dependency checks: the database answers and the channel layer round-trips."""

import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection
from django.http import JsonResponse


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


def _check_channel_layer() -> str:
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    probe = {"type": "health.probe", "nonce": uuid.uuid4().hex}
    async_to_sync(layer.send)(channel, probe)
    received = async_to_sync(layer.receive)(channel)
    return "ok" if received.get("nonce") == probe["nonce"] else "mismatch"


def healthz(request):
    checks: dict[str, str] = {}
    for name, check in (("database", _check_database), ("channelLayer", _check_channel_layer)):
        try:
            checks[name] = check()
        except Exception as exc:  # any failure of a dependency is "down", not a 500
            checks[name] = f"error: {type(exc).__name__}: {exc}"
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unhealthy", "checks": checks},
        status=200 if healthy else 503,
    )
