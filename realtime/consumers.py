"""Websocket streams of events: `ws/dispatch/` and `ws/contractor/` (docs/realtime.md).

connect(): authenticate, check which groups the user may join, join them, accept; then, with
`?after=<sequence>`, replay what the client missed from the EventLog (events.resume) and send
`{"kind": "replayed", "through": N}`. Live events follow, possibly repeating replayed ones:
clients drop duplicates by `id`. Closing with 4401/4403 happens after accept(), because a
handshake refused before accept() reaches the client as HTTP 403 without the code.

The channel layer is reached through a `LayerLink` (realtime/link.py): it keeps the
memberships fresh and rides out a layer outage; the consumer tells the client
(`degraded`, then `recovered`) and replays from the EventLog, after the last sequence it sent,
what the outage may have hidden.
"""

import json

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from channels.utils import await_many_dispatch
from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string

from events.envelope import envelope
from events.groups import channels_group_name
from events.models import Event
from events.resume import ResumeError, missed_events
from realtime.auth import query_params
from realtime.dbretry import with_db_retries
from realtime.link import LayerLink
from realtime.revocation import FollowsAccount

NOT_AUTHENTICATED = 4401
FORBIDDEN = 4403
MAX_FRAME_BYTES = 4096


def stream_groups(user, stream: str, regions: list[str] | None) -> set[str]:
    return import_string(settings.REALTIME_STREAM_POLICY)(user, stream, regions)


@database_sync_to_async
def _groups_for(user, stream: str, regions: list[str] | None) -> set[str] | str:
    """The groups to join, or the refusal message."""
    try:
        return stream_groups(user, stream, regions)
    except PermissionError as exc:
        return str(exc) or "forbidden"


@database_sync_to_async
def _replay(groups: set[str], after: int):
    replay = missed_events(groups, after)
    return [envelope(e) for e in replay.events], replay.through


@database_sync_to_async
def _last_sequence_before(moment) -> int:
    """The newest sequence recorded before `moment` (0 if none): where a client that has
    been sent no event yet resumes from after an outage."""
    found = (
        Event.objects.filter(occurred_at__lt=moment)
        .exclude(sequence=None)
        .order_by("-sequence")
        .values_list("sequence", flat=True)
        .first()
    )
    return found or 0


class EventStream(FollowsAccount, AsyncWebsocketConsumer):
    stream = ""

    async def __call__(self, scope, receive, send):
        """As Channels' consumer, but the channel layer is received from through the
        `LayerLink`, which waits out an outage where Channels would let the error end the
        connection ("Exception inside application: Error 111 connecting to ...")."""
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.channel_name = await self.channel_layer.new_channel()
        self.base_send = send
        self.joined: list[str] = []
        self.connected_at = timezone.now()
        self.last_sequence: int | None = None  # the newest event sent to the client
        self.link = LayerLink(
            self.channel_layer,
            self.channel_name,
            on_degraded=self.layer_degraded,
            on_recovered=self.layer_recovered,
        )
        try:
            await await_many_dispatch([receive, self.link.receive], self.dispatch)
        except StopConsumer:
            pass
        finally:
            await self.link.stop()

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.refuse(NOT_AUTHENTICATED, "not_authenticated", "Sign in or pass ?token=.")
            return
        params = query_params(self.scope)
        regions = None
        if self.stream == "dispatch" and params.get("regions"):
            regions = [r.strip() for r in params["regions"][0].split(",") if r.strip()]
        groups = await with_db_retries(lambda: _groups_for(user, self.stream, regions))
        if isinstance(groups, str):
            await self.refuse(FORBIDDEN, "forbidden", groups)
            return
        self.joined = sorted(groups)
        # During a layer outage the handshake still succeeds: the link joins when it answers.
        await self.link.join([channels_group_name(group) for group in self.joined])
        await self.accept()
        if not await self.follow_account(user, groups, regions):  # closes it when access goes
            return
        if "after" in params:
            await self.resume(params["after"][0], groups)
        self.link.start()

    async def refuse(self, code: int, error: str, message: str) -> None:
        await self.accept()
        await self.send_frame({"kind": "error", "code": error, "message": message})
        await self.close(code=code)

    async def resume(self, raw_after: str, groups: set[str]) -> None:
        # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
        if not (raw_after.isascii() and raw_after.isdigit()) or len(raw_after) > 18:
            await self.send_error("bad_after", "after must be a sequence number (0 or more).")
            return
        try:
            events, through = await with_db_retries(lambda: _replay(groups, int(raw_after)))
        except ResumeError as exc:
            await self.send_error(exc.code, exc.message)
            return
        for event in events:
            await self.send_frame({"kind": "event", "event": event})
        self.last_sequence = max(self.last_sequence or 0, through)
        await self.send_frame({"kind": "replayed", "through": through})

    async def disconnect(self, code):
        self.stop_following()
        await self.link.leave()

    # --- a channel-layer outage (realtime/link.py) ---------------------------------------

    async def layer_degraded(self) -> None:
        await self.send_frame(
            {
                "kind": "degraded",
                "reason": "channel_layer_unavailable",
                "message": "Live events are paused; they resume, missed ones included, "
                "once the server's channel layer is back.",
            }
        )

    async def layer_recovered(self) -> None:
        """The link has re-joined the groups: replay what the outage may have hidden, then
        say so. A database error propagates, and the link tries again."""
        after = self.last_sequence
        if after is None:
            after = await _last_sequence_before(self.connected_at)
        try:
            events, through = await _replay(set(self.joined), after)
        except ResumeError as exc:
            await self.send_error(exc.code, exc.message)
            events, through = [], after
        for event in events:
            await self.send_frame({"kind": "event", "event": event})
        self.last_sequence = max(self.last_sequence or 0, through)
        await self.send_frame({"kind": "recovered", "through": self.last_sequence})

    # --- frames from the client ----------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        if text_data is None:
            await self.send_error("binary_not_supported", "Frames are JSON text.")
            return
        if len(text_data) > MAX_FRAME_BYTES or len(text_data.encode()) > MAX_FRAME_BYTES:
            await self.send_error("frame_too_large", f"Frames are at most {MAX_FRAME_BYTES} bytes.")
            return
        try:
            frame = json.loads(text_data)
        except (ValueError, RecursionError):  # nesting deeper than the recursion limit
            await self.send_error("malformed", "Frames are JSON objects.")
            return
        if not isinstance(frame, dict) or not isinstance(frame.get("kind"), str):
            await self.send_error("malformed", 'Frames are JSON objects with a "kind".')
            return
        handler = getattr(self, f"frame_{frame['kind']}", None)
        if handler is None:
            await self.send_error("unknown_kind", f"Unknown kind {frame['kind'][:40]!r}.")
            return
        await handler(frame)

    async def frame_ping(self, frame: dict) -> None:
        await self.send_frame({"kind": "pong"})

    # --- frames to the client ------------------------------------------------------------

    async def dispatch(self, message: dict) -> None:
        # Channels runs close_old_connections in a worker thread before every handler, for
        # handlers that use the database. A live event touches none, and with 1,000 clients that
        # thread hop per frame was an eighth of daphne's main thread (docs/benchmarks.md).
        if message.get("type") == "event.message":
            await self.event_message(message)
        elif message.get("type") == "event.batch":
            await self.event_batch(message)
        else:
            await super().dispatch(message)

    async def event_message(self, message: dict) -> None:
        """A live event from the relay's broadcast (channel-layer type `event.message`)."""
        await self.send_frame({"kind": "event", "event": message["event"]})

    async def event_batch(self, message: dict) -> None:
        """Several live events for one group (`event.batch`), in sequence order: one frame
        each, as if they had come one by one."""
        for event in message["events"]:
            await self.send_frame({"kind": "event", "event": event})

    async def send_error(self, code: str, message: str) -> None:
        await self.send_frame({"kind": "error", "code": code, "message": message})

    async def send_frame(self, frame: dict) -> None:
        if frame["kind"] == "event":
            self.last_sequence = max(self.last_sequence or 0, frame["event"]["sequence"])
        await self.send(text_data=json.dumps(frame, separators=(",", ":")))


class DispatchStream(EventStream):
    stream = "dispatch"


class ContractorStream(EventStream):
    stream = "contractor"
