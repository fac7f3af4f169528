"""Websocket authentication: `?token=<key>` or the session cookie, and an Origin check.

A browser always sends `Origin`; a cross-site page must not ride on a dispatcher's session
cookie, so a present Origin must be this very origin: the same scheme (wss <-> https), host and
port as the handshake's Host header (a host in ALLOWED_HOSTS), or one listed in
CSRF_TRUSTED_ORIGINS, the rule Django's CSRF check applies to forms. Clients that send no Origin
(scripts, services) authenticate with a token anyway.

Tokens are checked by the policy REALTIME_TOKEN_POLICY names (`key -> (user, token) | None`),
the same check as the HTTP API; the token's id is kept in the scope (`auth_token_id`) so the
socket closes when the token is revoked (realtime.revocation).

Both ways read PostgreSQL on the websockets' own database threads (realtime/dbthreads.py),
not on the one thread database_sync_to_async uses, and retry briefly through a blip
(realtime/dbretry.py).

`authenticated()` is the whole websocket stack; its outermost layer finds daphne's transport
for the consumers' flow control (realtime/backpressure.py).

"""

from urllib.parse import parse_qs, urlsplit

from channels.auth import AuthMiddleware
from channels.auth import get_user as channels_get_user
from channels.security.websocket import WebsocketDenier
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.request import split_domain_port, validate_host
from django.utils.module_loading import import_string

from realtime.backpressure import WatchTransport
from realtime.dbretry import with_db_retries
from realtime.dbthreads import on_websocket_threads

DEFAULT_PORTS = {"http": 80, "https": 443}


def query_params(scope) -> dict[str, list[str]]:
    return parse_qs(scope.get("query_string", b"").decode("latin-1"))


@on_websocket_threads
def user_for_token(key: str):
    """(user, token id) for a good key, else (AnonymousUser, None)."""
    found = import_string(settings.REALTIME_TOKEN_POLICY)(key)
    if found is None:
        return AnonymousUser(), None
    user, token = found
    return user, token.pk


class TokenAuthMiddleware:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        keys = query_params(scope).get("token")
        if keys:
            key = keys[0][:256]
            user, token_id = await with_db_retries(lambda: user_for_token(key))
            scope = dict(scope, user=user, auth_token_id=token_id)
        return await self.app(scope, receive, send)


def _origin_tuple(origin: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port or DEFAULT_PORTS[parts.scheme]


def handshake_origin(scope) -> tuple[str, str, int] | None:
    """The origin a same-site page of this server has: the handshake's scheme and Host."""
    headers = dict(scope.get("headers", []))
    host = headers.get(b"host", b"").decode("latin-1")
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return None
    secure = scope.get("scheme") == "wss"
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        name = proxy_header[0].removeprefix("HTTP_").lower().replace("_", "-").encode()
        forwarded = headers.get(name, b"").decode("latin-1").split(",")[0].strip()
        secure = secure or forwarded == proxy_header[1]
    return _origin_tuple(f"{'https' if secure else 'http'}://{host}")


def origin_allowed(scope, origin: str) -> bool:
    wanted = _origin_tuple(origin)
    if wanted is None:
        return False
    trusted = {_origin_tuple(o) for o in settings.CSRF_TRUSTED_ORIGINS}
    return wanted == handshake_origin(scope) or wanted in trusted


class OriginCheck:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        headers = dict(scope.get("headers", []))
        origin = headers.get(b"origin")
        if origin is not None and not origin_allowed(scope, origin.decode("latin-1")):
            return await WebsocketDenier()(scope, receive, send)
        return await self.app(scope, receive, send)


# Channels' look-up of a session's user (its checks of the session hash included), without the
# database_sync_to_async around it, which would run it on asgiref's one shared thread.
session_user = on_websocket_threads(channels_get_user.func)


class SessionAuthMiddleware(AuthMiddleware):
    """Channels' session authentication, on the websocket threads, retried through a
    database blip."""

    async def resolve_scope(self, scope):
        scope["user"]._wrapped = await with_db_retries(lambda: session_user(scope))


def authenticated(app):
    """Session first (Channels' AuthMiddlewareStack, with retries), then a `?token=`
    overrides it; outermost, where daphne's own `send` arrives, the transport watch."""
    return WatchTransport(
        OriginCheck(
            CookieMiddleware(SessionMiddleware(SessionAuthMiddleware(TokenAuthMiddleware(app))))
        )
    )
