"""Open sockets follow the account: a socket whose sign-in is revoked, or whose user may no
longer watch what it joined, is closed within WEBSOCKET_RECHECK_SECONDS (default 2) plus one
check.

Every open socket is re-checked, in one batch per server process, every few seconds, against
the database, so it holds however the change was made (the admin, a management command, the
API, a script, a signal-free queryset update):
- 4401 when the user is deleted or deactivated, the socket's token revoked or expired, its
  session ended, or the password changed (which revokes every sign-in);
- 4403 when the user's roles or watched regions changed so that it may no longer watch a group
  the socket joined (the stream policy, REALTIME_STREAM_POLICY, decides, as at connect).
A check costs a few queries for all of the process's sockets together
(REALTIME_ACCESS_POLICY: `[(user id, token id or None)] -> [AccessState | None]`), and the
stream policy again only for the users whose roles changed, on the websockets' own database
threads (realtime/dbthreads.py). A check that fails (the database is down) closes nothing; the
next one tries again.

`FollowsAccount` is the consumer's side: `account_baseline()` in the handshake's read,
`follow_account()` once the socket has joined its groups, `stop_following()` on disconnect, and
`revoke()` sends the error frame and closes.
"""

import asyncio
import logging
import weakref
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.utils import timezone
from django.utils.module_loading import import_string

from realtime.dbthreads import on_websocket_threads

logger = logging.getLogger(__name__)

NOT_AUTHENTICATED = 4401
FORBIDDEN = 4403
DB_SESSIONS = "django.contrib.sessions.backends.db"


@dataclass
class Held:
    """What one open socket holds: who, by which credential, which groups."""

    consumer: Any
    user_id: int
    token_id: str | None
    session_key: str | None
    stream: str
    regions: list[str] | None
    groups: frozenset[str]
    state: Any = field(default=None)


def access_states(held: list[Held]) -> list:
    policy = import_string(settings.REALTIME_ACCESS_POLICY)
    return policy([(h.user_id, h.token_id) for h in held])


def live_sessions(keys: list[str]) -> set[str]:
    if not keys:
        return set()
    if settings.SESSION_ENGINE == DB_SESSIONS:
        return set(
            Session.objects.filter(
                session_key__in=keys, expire_date__gt=timezone.now()
            ).values_list("session_key", flat=True)
        )
    store = import_string(f"{settings.SESSION_ENGINE}.SessionStore")
    return {key for key in keys if store().exists(key)}


def verdicts(held: list[Held]) -> list[tuple[int, str, str] | None]:
    """For each socket: None (still fine) or (close code, error code, message)."""
    states = access_states(held)
    sessions = live_sessions([h.session_key for h in held if h.session_key])
    stream_policy = import_string(settings.REALTIME_STREAM_POLICY)
    users = get_user_model()._default_manager
    out: list[tuple[int, str, str] | None] = []
    for socket, state in zip(held, states, strict=True):
        if (
            state is None
            or (socket.session_key and socket.session_key not in sessions)
            or (socket.state is not None and state.credential != socket.state.credential)
        ):
            out.append((NOT_AUTHENTICATED, "revoked", "Your sign-in was revoked or expired."))
            continue
        if socket.state is not None and state.roles != socket.state.roles:
            try:
                allowed = stream_policy(users.get(pk=socket.user_id), socket.stream, socket.regions)
            except PermissionError as exc:
                out.append((FORBIDDEN, "forbidden", str(exc) or "forbidden"))
                continue
            lost = socket.groups - set(allowed)
            if lost:
                message = f"No longer permitted to watch: {', '.join(sorted(lost))}."
                out.append((FORBIDDEN, "forbidden", message))
                continue
        socket.state = state
        out.append(None)
    return out


class AccessWatch:
    """The open sockets of one event loop (one server process) and the task re-checking them;
    the task ends when the last socket goes."""

    def __init__(self) -> None:
        self.held: dict[int, Held] = {}
        self.task: asyncio.Task | None = None

    def add(self, held: Held) -> None:
        self.held[id(held.consumer)] = held
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self.run())

    def discard(self, consumer) -> None:
        self.held.pop(id(consumer), None)
        if not self.held and self.task is not None and not self.task.done():
            self.task.cancel()  # nothing left to watch; a new socket starts another
            self.task = None

    async def run(self) -> None:
        while self.held:
            await asyncio.sleep(settings.WEBSOCKET_RECHECK_SECONDS)
            await self.check()

    async def check(self) -> None:
        snapshot = list(self.held.values())
        if not snapshot:
            return
        try:
            found = await on_websocket_threads(verdicts)(snapshot)
        except Exception:  # the database is down: close nothing, try again next time
            logger.warning("websocket access re-check failed", exc_info=True)
            return
        closing = []
        for socket, verdict in zip(snapshot, found, strict=True):
            if verdict is None or self.held.get(id(socket.consumer)) is not socket:
                continue
            self.held.pop(id(socket.consumer), None)
            closing.append(self.close(socket, verdict))
        if closing:
            # Shielded: the last socket's disconnect may cancel this task meanwhile.
            await asyncio.shield(asyncio.gather(*closing))

    @staticmethod
    async def close(socket: Held, verdict: tuple[int, str, str]) -> None:
        try:
            await socket.consumer.revoke(*verdict)
        except Exception:  # the client went away meanwhile
            logger.debug("closing a revoked socket failed", exc_info=True)


_watches: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AccessWatch]" = (
    weakref.WeakKeyDictionary()
)


def watch() -> AccessWatch:
    loop = asyncio.get_running_loop()
    if loop not in _watches:
        _watches[loop] = AccessWatch()
    return _watches[loop]


class FollowsAccount:
    """Consumer mixin: re-checked sign-in and permissions for as long as the socket is open."""

    def account_baseline(self, user, token_id, groups, regions) -> tuple[Held, tuple | None]:
        """What this socket holds, checked once: the baseline later checks compare with, and
        the verdict (None: fine). Synchronous, in the handshake's database read."""
        session = self.scope.get("session")
        held = Held(
            consumer=self,
            user_id=user.pk,
            token_id=token_id,
            session_key=None if token_id else getattr(session, "session_key", None),
            stream=self.stream,
            regions=regions,
            groups=frozenset(groups),
        )
        return held, verdicts([held])[0]

    def follow_account(self, held: Held) -> None:
        """Start following (closes the socket when access goes)."""
        watch().add(held)

    def stop_following(self) -> None:
        watch().discard(self)

    async def revoke(self, code: int, error: str, message: str) -> None:
        # At once, not after the frames waiting for a slow client (realtime/backpressure.py).
        await self.send_frame({"kind": "error", "code": error, "message": message}, wait=False)
        await self.close(code=code)
