"""Websocket clients that behave like the board: they drop at random and reconnect with
`?after=<the highest sequence seen>`, dropping duplicates by event id.

Each client remembers the `after` of its first connection; at the end it must hold every event
of its groups with a higher sequence (checked against the EventLog by chaos.invariants).

They also record what the fault measures need: every connection attempt (when, and whether
the handshake got as far as the `replayed` frame), every socket the server closed (the client
closes its own after its random life; any other end is the server's or the network's), and
for each event first received live (after `replayed` or `recovered`, not during a replay) how
long after its `occurredAt` it arrived."""

import json
import random
import time
from dataclasses import dataclass, field
from datetime import datetime

from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.sync.client import connect

from chaos.background import Background

REPLAY_TIMEOUT = 10.0  # seconds from the handshake to the `replayed` frame


@dataclass
class Attempt:
    at: float  # monotonic
    ok: bool
    error: str = ""


@dataclass
class Disconnect:
    at: float  # monotonic
    detail: str


@dataclass
class ClientRecord:
    name: str
    path: str  # "/ws/dispatch/?regions=north&token=..." without after
    groups: set[str]
    first_after: int
    received: dict[str, int] = field(default_factory=dict)  # event id -> sequence
    groups_seen: dict[str, list[str]] = field(default_factory=dict)  # event id -> its groups
    # (occurredAt, received), wall clock, for events first received live
    live: list[tuple[float, float]] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    disconnects: list[Disconnect] = field(default_factory=list)
    # What happened, for a failed run's post-mortem (written to clients.json with --keep):
    # (wall clock, what, detail): connect/after, replayed/through, event/sequence, closed.
    timeline: list[tuple[float, str, int | str]] = field(default_factory=list)
    duplicates: int = 0
    degraded: int = 0  # `degraded` frames: the server's channel layer was down
    errors: list[str] = field(default_factory=list)
    last_sequence: int = 0

    def __post_init__(self) -> None:
        self.last_sequence = self.first_after

    @property
    def connects(self) -> int:
        return sum(a.ok for a in self.attempts)

    @property
    def failed_connects(self) -> int:
        return sum(not a.ok for a in self.attempts)


def occurred(event: dict) -> float:
    return datetime.fromisoformat(event["occurredAt"]).timestamp()


class WebsocketClient(Background):
    def __init__(self, record: ClientRecord, *, ws_url: str, seed: int,
                 min_life: float = 1.0, max_life: float = 6.0) -> None:  # fmt: skip
        super().__init__(name=record.name)
        self.record = record
        self.ws_url = ws_url
        self.rng = random.Random(seed)
        self.min_life, self.max_life = min_life, max_life
        self.live = False

    def _url(self) -> str:
        return f"{self.ws_url}{self.record.path}&after={self.record.last_sequence}"

    def _handle(self, raw: str | bytes) -> str:
        received_at = time.time()
        frame = json.loads(raw)
        kind = frame.get("kind")
        record = self.record
        if kind == "event":
            event = frame["event"]
            if event["id"] in record.received:
                record.duplicates += 1
            else:
                record.received[event["id"]] = event["sequence"]
                record.groups_seen[event["id"]] = event["groups"]
                if self.live:
                    record.live.append((occurred(event), received_at))
            record.last_sequence = max(record.last_sequence, event["sequence"])
            record.timeline.append((received_at, "event" if self.live else "replay",
                                    event["sequence"]))  # fmt: skip
        elif kind in ("replayed", "recovered"):
            self.live = True
            record.timeline.append((received_at, kind, frame.get("through", 0)))
        elif kind == "degraded":
            self.live = False
            record.degraded += 1
        elif kind == "error":
            record.errors.append(f"{frame.get('code')}: {frame.get('message')}")
        return kind

    def _failed(self, at: float, exc: BaseException) -> None:
        error = f"{type(exc).__name__}: {exc}"
        self.record.attempts.append(Attempt(at, False, error))
        if len(self.record.errors) < 50:
            self.record.errors.append(f"connection: {error}")

    def session(self, *, life: float, until_replayed: bool = False) -> bool:
        """One connection: resume, wait for the replay to end, read frames until `life` seconds
        have passed, then close. With `until_replayed` (the final resume) the client's stop does
        not cut the replay short. Returns whether the replay completed."""
        replayed = False
        self.live = False
        at = time.monotonic()
        self.record.timeline.append((time.time(), "connect", self.record.last_sequence))
        try:
            ws = connect(self._url(), open_timeout=5, close_timeout=2)
        except (OSError, WebSocketException, TimeoutError) as exc:
            self._failed(at, exc)
            return False
        with ws:
            connected = time.monotonic()
            self.record.timeline.append((time.time(), "connected", 0))
            ends = connected + life
            try:
                while True:
                    now = time.monotonic()
                    stopping = self.stop_event.is_set() and not until_replayed
                    if replayed and (now >= ends or stopping):
                        return True
                    if not replayed and stopping:
                        return False  # our own stop: the attempt counts for nothing
                    if not replayed and now - connected > REPLAY_TIMEOUT:
                        self._failed(at, TimeoutError(f"no replayed frame in {REPLAY_TIMEOUT}s"))
                        return False
                    wait = ends - now if replayed else REPLAY_TIMEOUT - (now - connected)
                    try:
                        raw = ws.recv(timeout=max(0.05, min(wait, 0.5)))
                    except TimeoutError:
                        continue
                    if self._handle(raw) == "replayed" and not replayed:
                        replayed = True
                        self.record.attempts.append(Attempt(at, True))
            except (OSError, WebSocketException) as exc:
                if not replayed:  # closed before the handshake and resume were done
                    self._failed(at, exc)
                else:
                    detail = f"{type(exc).__name__}: {exc}"
                    if isinstance(exc, ConnectionClosed) and exc.rcvd is not None:
                        detail = f"closed by the server, code {exc.rcvd.code} {exc.rcvd.reason}"
                    self.record.disconnects.append(Disconnect(time.monotonic(), detail))
                return replayed

    def _run(self) -> None:
        while not self.stop_event.is_set():
            self.session(life=self.rng.uniform(self.min_life, self.max_life))
            self.stop_event.wait(self.rng.uniform(0.05, 0.8))

    def catch_up(self, settle: float = 1.0, attempts: int = 5) -> bool:
        """The final reconnect: resume once more and read until the replay is done."""
        for _ in range(attempts):
            if self.session(life=settle, until_replayed=True):
                return True
            time.sleep(0.5)
        return False
