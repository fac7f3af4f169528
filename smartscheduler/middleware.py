"""HTTP hardening that applies to every request: a cap on request bodies, and API answers that
no browser or proxy stores.

The body cap exists twice because bodies arrive two ways: `asgi_body_limit` wraps the ASGI
application (daphne), where Django would otherwise read the whole body into a spooled
temporary file before any middleware runs; `BodySizeLimit` is the same rule for requests that
reach Django another way (WSGI, the test client). Both answer a JSON 413 without reading on.
"""

import json

from django.conf import settings
from django.http import JsonResponse
from django.utils.cache import patch_cache_control


def too_large_body(limit: int) -> dict:
    return {"detail": f"The request body is larger than {limit} bytes.", "code": "too_large"}


class BodySizeLimit:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        limit = settings.REQUEST_MAX_BODY_BYTES
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit:
            return JsonResponse(too_large_body(limit), status=413)
        return self.get_response(request)


class NoStoreApiResponses:
    """`Cache-Control: no-store` on everything under /api/: tokens and personal data."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.path.startswith("/api/"):
            patch_cache_control(response, no_store=True, private=True)
        return response


def asgi_body_limit(app):
    """ASGI middleware: an HTTP request whose Content-Length, or whose body as it streams in,
    passes REQUEST_MAX_BODY_BYTES gets a JSON 413 and the application never sees it."""

    async def guarded(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        limit = settings.REQUEST_MAX_BODY_BYTES
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    return await _refuse(send, limit)
        # No (or a small) Content-Length: count what arrives, and refuse past the limit.
        chunks, received = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its body
            received += len(message.get("body", b""))
            if received > limit:
                return await _refuse(send, limit)
            chunks.append(message)
            if not message.get("more_body", False):
                break

        async def replay():
            if chunks:
                return chunks.pop(0)
            return await receive()

        return await app(scope, replay, send)

    return guarded


async def _refuse(send, limit: int) -> None:
    body = json.dumps(too_large_body(limit)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
