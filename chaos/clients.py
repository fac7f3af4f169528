"""Websocket clients that behave like the board: they drop at random and reconnect with
`?after=<the highest sequence seen>`, dropping duplicates by event id.

Each client remembers the `after` of its first connection; at the end it must hold every event
of its groups with a higher sequence (checked against the EventLog by chaos.invariants)."""

import json
import random
import threading
import time
from dataclasses import dataclass, field

from websockets.exceptions import WebSocketException
from websockets.sync.client import connect


@dataclass
class ClientRecord:
    name: str
    path: str  # "/ws/dispatch/?regions=north&token=..." without after
    groups: set[str]
    first_after: int
    received: dict[str, int] = field(default_factory=dict)  # event id -> sequence
    groups_seen: dict[str, list[str]] = field(default_factory=dict)  # event id -> its groups
    duplicates: int = 0
    connects: int = 0
    failed_connects: int = 0
    errors: list[str] = field(default_factory=list)
    last_sequence: int = 0

    def __post_init__(self) -> None:
        self.last_sequence = self.first_after


class WebsocketClient:
    def __init__(self, record: ClientRecord, *, ws_url: str, seed: int,
                 min_life: float = 1.0, max_life: float = 6.0) -> None:  # fmt: skip
        self.record = record
        self.ws_url = ws_url
        self.rng = random.Random(seed)
        self.min_life, self.max_life = min_life, max_life
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name=record.name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=20)

    def _url(self) -> str:
        return f"{self.ws_url}{self.record.path}&after={self.record.last_sequence}"

    def _handle(self, raw: str | bytes) -> str:
        frame = json.loads(raw)
        kind = frame.get("kind")
        if kind == "event":
            event = frame["event"]
            if event["id"] in self.record.received:
                self.record.duplicates += 1
            else:
                self.record.received[event["id"]] = event["sequence"]
                self.record.groups_seen[event["id"]] = event["groups"]
            self.record.last_sequence = max(self.record.last_sequence, event["sequence"])
        elif kind == "error":
            self.record.errors.append(f"{frame.get('code')}: {frame.get('message')}")
        return kind

    def session(self, *, life: float, until_replayed: bool = False) -> bool:
        """One connection: resume, read frames for `life` seconds (or until the replay is
        done and `life` has passed), then close. Returns whether the replay completed."""
        replayed = False
        try:
            with connect(self._url(), open_timeout=5, close_timeout=2) as ws:
                self.record.connects += 1
                ends = time.monotonic() + life
                while True:
                    left = ends - time.monotonic()
                    if left <= 0 and (replayed or not until_replayed):
                        break
                    if left <= -15:  # bounded even if the replay never comes
                        break
                    if self.stop_event.is_set() and not until_replayed:
                        break
                    try:
                        raw = ws.recv(timeout=max(0.05, min(left, 0.5)))
                    except TimeoutError:
                        continue
                    if self._handle(raw) == "replayed":
                        replayed = True
        except (OSError, WebSocketException, TimeoutError) as exc:
            self.record.failed_connects += 1
            if len(self.record.errors) < 50:
                self.record.errors.append(f"connection: {type(exc).__name__}: {exc}")
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
