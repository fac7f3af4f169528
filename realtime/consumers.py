"""Websocket streams of events: `ws/dispatch/` and `ws/contractor/` (docs/realtime.md).

connect(): accept; in one database read, authenticate, check which groups the user may join
and take the account's baseline (realtime/revocation.py); join the groups; then, with
`?after=<sequence>`, replay what the client missed from the EventLog (events.resume) and send
`{"kind": "replayed", "through": N}`. Live events follow, possibly repeating replayed ones:
clients drop duplicates by `id`. A refusal (4401, 4403, 4429; 4503 when the database stays
unreachable) is an error frame and a close after the accept, because a handshake refused before
accept() reaches the client as HTTP 403 without the code, and because a handshake that waits
for its reads is dropped by daphne in a reconnect storm (its timeout, 5 s by default).

The channel layer is reached through a `LayerLink` (realtime/link.py): it keeps the
memberships fresh and rides out a layer outage; the consumer tells the client
(`degraded`, then `recovered`) and replays from the EventLog, after the last sequence it sent,
what the outage may have hidden.

The handshake's reads, the replays and the account checks run on the websockets' own bounded
pool of database threads, replays on all but one of them (realtime/dbthreads.py). A
replay is read and sent a page at a time, its frames built once per process
(realtime/framecache.py), each frame only once the client's transport takes
more (realtime/backpressure.py): a client that does not read holds a page and a buffer, not
its whole replay, and is closed (4408) once it has taken nothing for a while. A user holds at
most WEBSOCKET_MAX_CONNECTIONS_PER_USER sockets per server process (4429,
realtime/limits.py).
"""

import functools
import json
import logging
from array import array
from collections import namedtuple

from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from channels.utils import await_many_dispatch
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django.utils import timezone
from django.utils.module_loading import import_string

from events.envelope import FRAME_SQL, envelope
from events.groups import channels_group_name
from events.models import Event
from events.resume import ResumeError, missed_sequences
from realtime import framecache, limits, metrics
from realtime.auth import handshake_user, query_params
from realtime.backpressure import SCOPE_KEY as TRANSPORT_WATCH
from realtime.dbretry import with_db_retries
from realtime.dbthreads import for_replays, on_websocket_threads
from realtime.link import LayerLink
from realtime.revocation import FollowsAccount

log = logging.getLogger("realtime")

# More than the relay's largest batch (--batch-size, 500 by default): see layer_recovered.
RECOVERY_OVERLAP = 1000

NOT_AUTHENTICATED = 4401
FORBIDDEN = 4403
SLOW_CONSUMER = 4408  # the client took nothing for WEBSOCKET_SEND_TIMEOUT_SECONDS
TOO_MANY_CONNECTIONS = 4429  # the user holds WEBSOCKET_MAX_CONNECTIONS_PER_USER already
UNAVAILABLE = 4503  # the handshake's reads failed through their retries (as HTTP 503)
DATABASE_DOWN = (OperationalError, InterfaceError)
MAX_FRAME_BYTES = 4096
# Events per read of a replay: what a socket holds of its replay while its client is slow.
REPLAY_PAGE = 100


def stream_groups(user, stream: str, regions: list[str] | None) -> set[str]:
    return import_string(settings.REALTIME_STREAM_POLICY)(user, stream, regions)


def frame_text(frame: dict) -> str:
    return json.dumps(frame, separators=(",", ":"))


# What a handshake's one database read finds: the user (AnonymousUser when the sign-in is
# missing or wrong), and, for a signed-in one, the groups to join or the refusal message, and
# what the socket holds with the account's verdict on it (realtime/revocation.py).
SignIn = namedtuple("SignIn", "user groups held verdict")


@on_websocket_threads
def _sign_in(consumer: "EventStream", regions: list[str] | None) -> SignIn:
    """The handshake's reads, on one websocket database thread and one pooled connection:
    the sign-in, the stream's groups and the account's baseline."""
    user, token_id = handshake_user(consumer.scope)
    if not user.is_authenticated:
        return SignIn(user, None, None, None)
    try:
        groups = stream_groups(user, consumer.stream, regions)
    except PermissionError as exc:
        return SignIn(user, str(exc) or "forbidden", None, None)
    return SignIn(user, groups, *consumer.account_baseline(user, token_id, groups, regions))


@for_replays
def _missed(groups: set[str], after: int) -> array:
    """The sequences to replay, packed (8 bytes each: a socket may hold them for a while)."""
    return array("q", missed_sequences(groups, after))


# What envelope() reads of an event: a replay page reads these columns only, as rows.
FrameRow = namedtuple(
    "FrameRow",
    "sequence event_id type version occurred_at aggregate_type aggregate_id groups payload",
)


@for_replays
def _read_frames(sequences: list[int]) -> list[tuple[int, str]]:
    """(sequence, frame text) of these events, kept in the process's frame cache. On
    PostgreSQL the text is written by the database (events.envelope.FRAME_SQL), in one query
    with the sequences as one array parameter (Django's IN of a hundred placeholders took a
    quarter of a page's time); elsewhere serialised here, from rows, not model instances.
    Either way not on the event loop."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT sequence, {FRAME_SQL} FROM {Event._meta.db_table}"
                " WHERE sequence = ANY(%s)",
                [sequences],
            )
            read = cursor.fetchall()
    else:
        rows = Event.objects.filter(sequence__in=sequences).values_list(*FrameRow._fields)
        read = [
            (row[0], frame_text({"kind": "event", "event": envelope(FrameRow(*row))}))
            for row in rows
        ]
    framecache.frames.put_many(read)
    return read


async def _event_frames(sequences: list[int], *, retried: bool) -> list[tuple[int, str]]:
    """(sequence, frame text) of these events in sequence order: from the frame cache, and
    from the database (on a websocket thread) for those it does not hold. An event pruned
    meanwhile is left out. `retried`: the read goes through realtime.dbretry."""
    found = framecache.frames.get_many(sequences)
    missing = [sequence for sequence in sequences if sequence not in found]
    if missing:
        read = functools.partial(_read_frames, missing)
        found.update(await (with_db_retries(read) if retried else read()))
    return [(sequence, found[sequence]) for sequence in sequences if sequence in found]


@for_replays
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
        self.closing = False  # close() was sent: nothing more goes out
        self.slot_of: int | None = None  # the user whose socket slot this holds (limits)
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
            self.give_back_slot()
            self.stop_following()  # also when connect() was cut short after following
            await self.link.stop()

    def give_back_slot(self) -> None:
        if self.slot_of is not None:
            limits.give_back(self.slot_of)
            self.slot_of = None

    async def connect(self):
        """Accepted at once, before any database read (the module says why)."""
        await self.accept()
        params = query_params(self.scope)
        regions = None
        if self.stream == "dispatch" and params.get("regions"):
            regions = [r.strip() for r in params["regions"][0].split(",") if r.strip()]
        try:
            signed_in = await with_db_retries(lambda: _sign_in(self, regions))
        except DATABASE_DOWN:
            await self.database_down()
            return
        user = signed_in.user
        if not user.is_authenticated:
            await self.refuse(NOT_AUTHENTICATED, "not_authenticated", "Sign in or pass ?token=.")
            return
        if not limits.take_slot(user.pk):
            limit = settings.WEBSOCKET_MAX_CONNECTIONS_PER_USER
            message = f"At most {limit} open streams per user: close one, or try again later."
            metrics.OVER_LIMIT.inc()
            await self.refuse(TOO_MANY_CONNECTIONS, "too_many_connections", message)
            return
        self.slot_of = user.pk
        if isinstance(signed_in.groups, str):
            await self.refuse(FORBIDDEN, "forbidden", signed_in.groups)
            return
        if signed_in.verdict is not None:  # access went between the sign-in and its check
            await self.revoke(*signed_in.verdict)
            return
        self.joined = sorted(signed_in.groups)
        # During a layer outage the handshake still succeeds: the link joins when it answers.
        await self.link.join([channels_group_name(group) for group in self.joined])
        self.follow_account(signed_in.held)  # closes the socket when access goes
        if "after" in params:
            try:
                await self.resume(params["after"][0], signed_in.groups)
            except DATABASE_DOWN:
                await self.database_down()
                return
        self.link.start()

    async def refuse(self, code: int, error: str, message: str) -> None:
        await self.send_frame({"kind": "error", "code": error, "message": message}, wait=False)
        await self.close(code=code)

    async def database_down(self) -> None:
        """The handshake's reads failed through every retry (realtime/dbretry.py)."""
        log.warning("closing a websocket: the database was unavailable for its handshake")
        message = "The server cannot reach its database; reconnect in a few seconds."
        await self.refuse(UNAVAILABLE, "unavailable", message)

    async def resume(self, raw_after: str, groups: set[str]) -> None:
        # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
        if not (raw_after.isascii() and raw_after.isdigit()) or len(raw_after) > 18:
            await self.send_error("bad_after", "after must be a sequence number (0 or more).")
            return
        after = int(raw_after)
        if self.client_gone:  # e.g. daphne gave up the handshake while its reads queued
            metrics.REPLAYS_ABANDONED.inc()
            return
        try:
            sequences = await with_db_retries(lambda: _missed(groups, after))
        except ResumeError as exc:
            await self.send_error(exc.code, exc.message)
            return
        if await self.send_replay(sequences, retried=True):
            through = max([after, *sequences[-1:]])
            self.last_sequence = max(self.last_sequence or 0, through)
            await self.send_frame({"kind": "replayed", "through": through})

    async def send_replay(self, sequences: array, *, retried: bool) -> bool:
        """Sends the events of `sequences` a page at a time, each page read once the previous
        one is out; False if the socket closed meanwhile (a client too slow) or its client
        went away (no further page is read for it). `retried`: read through realtime.dbretry
        (a handshake) or let a database error propagate (a recovery, which the link
        retries)."""
        for start in range(0, len(sequences), REPLAY_PAGE):
            if self.closing or self.client_gone:
                break
            page = list(sequences[start : start + REPLAY_PAGE])
            for sequence, text in await _event_frames(page, retried=retried):
                if not await self.send_text(text):
                    break
                self.last_sequence = max(self.last_sequence or 0, sequence)
        if self.client_gone:
            metrics.REPLAYS_ABANDONED.inc()
        return not (self.closing or self.client_gone)

    @property
    def client_gone(self) -> bool:
        """The client's connection is lost (under daphne; elsewhere this is not known before
        the disconnect message, which waits until the handshake's replay has ended)."""
        watch = self.scope.get(TRANSPORT_WATCH)
        return watch is not None and watch.gone

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
        else:
            # The broadcast sends a batch's groups concurrently, so this socket may have been
            # sent a later event of one group while an earlier one of another group was still
            # in the layer when it failed: replay a batch's worth before the newest sent
            # (duplicates are dropped by id; a gap would not be).
            after = max(0, after - RECOVERY_OVERLAP)
        try:
            sequences = await _missed(set(self.joined), after)
        except ResumeError as exc:
            await self.send_error(exc.code, exc.message)
            sequences = array("q")
        if not await self.send_replay(sequences, retried=False):
            return
        self.last_sequence = max([self.last_sequence or 0, after, *sequences[-1:]])
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

    async def send_frame(self, frame: dict, *, wait: bool = True) -> None:
        """Sends `frame`, once the client's transport takes more (`wait=False`: at once, for
        the last frame before a close)."""
        if await self.send_text(frame_text(frame), wait=wait) and frame["kind"] == "event":
            self.last_sequence = max(self.last_sequence or 0, frame["event"]["sequence"])

    async def send_text(self, text: str, *, wait: bool = True) -> bool:
        """False, sending nothing, once the socket is closing; closes it (4408) when the
        client has taken nothing for WEBSOCKET_SEND_TIMEOUT_SECONDS."""
        if self.closing or self.client_gone:
            return False
        watch = self.scope.get(TRANSPORT_WATCH)
        if wait and watch is not None and watch.paused:
            metrics.SEND_WAITS.inc()
            if not await watch.writable(settings.WEBSOCKET_SEND_TIMEOUT_SECONDS):
                await self.too_slow()
                return False
            if self.closing:  # closed meanwhile (a revocation)
                return False
        await self.send(text_data=text)
        return True

    async def too_slow(self) -> None:
        log.info("closing a websocket whose client read nothing (%s)", self.channel_name)
        metrics.SLOW_CLOSES.inc()
        message = "The client did not read its frames in time; reconnect with ?after=."
        frame = {"kind": "error", "code": "slow_consumer", "message": message}
        await self.send_frame(frame, wait=False)
        await self.close(code=SLOW_CONSUMER)

    async def close(self, code=None, reason=None) -> None:
        """Once: the frames after it would go nowhere. A closing socket no longer counts
        towards its user's limit (daphne drops it within a second if the client does not
        answer the close)."""
        self.give_back_slot()
        if not self.closing:
            self.closing = True
            await super().close(code=code, reason=reason)


class DispatchStream(EventStream):
    stream = "dispatch"


class ContractorStream(EventStream):
    stream = "contractor"
