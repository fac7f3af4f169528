"""Liveness with dependency checks: the database answers and the channel layer round-trips.

Everyone learns up (200) or down (503); which check failed and why is logged, and shown only to
operators (`smartscheduler.operations`): an exception's text can name internal hosts.
"""

import asyncio
import logging
import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection
from django.http import JsonResponse

from realtime.link import receive_uncancelled

logger = logging.getLogger(__name__)


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


# A probe's round trip past this is "down": a liveness check must answer, never hang.
CHANNEL_LAYER_TIMEOUT = 2.0


def _check_channel_layer() -> str:
    async def round_trip() -> str:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        probe = {"type": "health.probe", "nonce": uuid.uuid4().hex}
        async with asyncio.timeout(CHANNEL_LAYER_TIMEOUT):
            await layer.send(channel, probe)
            received = await receive_uncancelled(layer, channel)
        return "ok" if received.get("nonce") == probe["nonce"] else "mismatch"

    return async_to_sync(round_trip)()


def healthz(request, *, details: bool = False):
    checks: dict[str, str] = {}
    for name, check in (("database", _check_database), ("channelLayer", _check_channel_layer)):
        try:
            checks[name] = check()
        except Exception as exc:  # any failure of a dependency is "down", not a 500
            checks[name] = f"error: {type(exc).__name__}: {exc}"
            logger.warning("healthz: %s check failed: %s", name, checks[name])
    healthy = all(value == "ok" for value in checks.values())
    body: dict = {"status": "ok" if healthy else "unhealthy"}
    if details:
        body["checks"] = checks
    return JsonResponse(body, status=200 if healthy else 503)
