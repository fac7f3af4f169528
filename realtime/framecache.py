"""The replay frames of recent events, kept once per server process for every socket.

An event's frame never changes (an event's payload, groups and sequence are written once), and
a reconnect storm replays the same few hundred events to many sockets: each was read from the
database and serialised again for every socket, on the few websocket database threads. Here a
frame is built once per process; a replay page whose frames are all cached costs no database
read and no thread hop. Bounded (least recently used out), so it holds the recent tail of the
log that reconnecting clients ask for, never the log.
"""

import threading
from collections import OrderedDict
from collections.abc import Iterable

FRAMES = 20_000  # about 10 MB of frames at the usual 500 bytes


class FrameCache:
    def __init__(self, size: int = FRAMES) -> None:
        self.size = size
        self._frames: OrderedDict[int, str] = OrderedDict()
        self._lock = threading.Lock()  # filled from the database threads, read on the loop

    def get_many(self, sequences: Iterable[int]) -> dict[int, str]:
        found: dict[int, str] = {}
        with self._lock:
            for sequence in sequences:
                text = self._frames.get(sequence)
                if text is not None:
                    self._frames.move_to_end(sequence)
                    found[sequence] = text
        return found

    def put_many(self, frames: Iterable[tuple[int, str]]) -> None:
        with self._lock:
            for sequence, text in frames:
                self._frames[sequence] = text
                self._frames.move_to_end(sequence)
            while len(self._frames) > self.size:
                self._frames.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._frames.clear()


frames = FrameCache()
