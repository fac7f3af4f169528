"""Websocket authentication: `?token=<key>` or the session cookie, and an Origin check.

A browser always sends `Origin`; a cross-site page must not ride on a dispatcher's session
cookie, so a present Origin must match ALLOWED_HOSTS. Clients that send no Origin (scripts,
services) authenticate with a token anyway.

Both ways read PostgreSQL, and retry briefly through a blip (realtime/dbretry.py).
"""

from urllib.parse import parse_qs, urlparse

from channels.auth import AuthMiddleware, get_user
from channels.db import database_sync_to_async
from channels.security.websocket import WebsocketDenier
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.request import validate_host
from rest_framework.authtoken.models import Token

from realtime.dbretry import with_db_retries


def query_params(scope) -> dict[str, list[str]]:
    return parse_qs(scope.get("query_string", b"").decode("latin-1"))


@database_sync_to_async
def user_for_token(key: str):
    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active:
        return AnonymousUser()
    return token.user


class TokenAuthMiddleware:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        keys = query_params(scope).get("token")
        if keys:
            key = keys[0][:64]
            scope = dict(scope, user=await with_db_retries(lambda: user_for_token(key)))
        return await self.app(scope, receive, send)


class OriginCheck:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        headers = dict(scope.get("headers", []))
        origin = headers.get(b"origin")
        if origin is not None:
            host = urlparse(origin.decode("latin-1")).hostname or ""
            if not validate_host(host, settings.ALLOWED_HOSTS):
                return await WebsocketDenier()(scope, receive, send)
        return await self.app(scope, receive, send)


class SessionAuthMiddleware(AuthMiddleware):
    """Channels' session authentication, retried through a database blip."""

    async def resolve_scope(self, scope):
        scope["user"]._wrapped = await with_db_retries(lambda: get_user(scope))


def authenticated(app):
    """Session first (Channels' AuthMiddlewareStack, with retries), then a `?token=`
    overrides it."""
    return OriginCheck(
        CookieMiddleware(SessionMiddleware(SessionAuthMiddleware(TokenAuthMiddleware(app))))
    )
