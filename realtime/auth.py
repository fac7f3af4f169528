"""Websocket authentication: `?token=<key>` or the session cookie, and an Origin check.

A browser always sends `Origin`; a cross-site page must not ride on a dispatcher's session
cookie, so a present Origin must be this very origin: the same scheme (wss <-> https), host and
port as the handshake's Host header (a host in ALLOWED_HOSTS), or one listed in
CSRF_TRUSTED_ORIGINS, the rule Django's CSRF check applies to forms. Clients that send no Origin
(scripts, services) authenticate with a token anyway.

The Origin check needs no database and refuses before the handshake is accepted. The sign-in
itself is read after it (`handshake_user`, called by the consumer, realtime/consumers.py, in
the one database read of its handshake): daphne drops a handshake its application has not
accepted within its timeout (5 s by default), and in a reconnect storm the reads queue, so a
handshake that waited for them was dropped and retried, and each retry queued again. A
refusal reaches the client as an error frame and a close code either way.

Tokens are checked by the policy REALTIME_TOKEN_POLICY names (`key -> (user, token) | None`),
the same check as the HTTP API; the token's id is kept with the socket so it closes when the
token is revoked (realtime.revocation).

`authenticated()` is the whole websocket stack; its outermost layer finds daphne's transport
for the consumers' flow control (realtime/backpressure.py).

"""

from urllib.parse import parse_qs, urlsplit

from channels.auth import get_user as channels_get_user
from channels.security.websocket import WebsocketDenier
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.request import split_domain_port, validate_host
from django.utils.module_loading import import_string

from realtime.backpressure import WatchTransport

DEFAULT_PORTS = {"http": 80, "https": 443}


def query_params(scope) -> dict[str, list[str]]:
    return parse_qs(scope.get("query_string", b"").decode("latin-1"))


def handshake_user(scope) -> tuple:
    """(user, token id or None) for the handshake's credentials, AnonymousUser when they are
    missing or wrong: a `?token=` decides when given (a wrong one is not helped by a session
    beside it), else the session cookie. Synchronous: it reads the database, on a websocket
    database thread."""
    keys = query_params(scope).get("token")
    if keys:
        found = import_string(settings.REALTIME_TOKEN_POLICY)(keys[0][:256])
        if found is None:
            return AnonymousUser(), None
        user, token = found
        return user, token.pk
    if "session" not in scope:
        return AnonymousUser(), None
    # Channels' look-up of a session's user (its checks of the session hash included),
    # without the database_sync_to_async around it: the caller is on a thread already.
    return channels_get_user.func(scope), None


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


def authenticated(app):
    """The Origin check and the session (Channels' cookie and session middleware, which load
    nothing until the consumer reads the session); outermost, where daphne's own `send`
    arrives, the transport watch."""
    return WatchTransport(OriginCheck(CookieMiddleware(SessionMiddleware(app))))
