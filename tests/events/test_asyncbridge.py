"""The bridge the relay's broadcast runs on: a timed-out run is cancelled, not left running.

Before, `run` stopped waiting after its timeout but the coroutine went on sending: the relay
released the batch for a retry and sent it again while the first sends still ran.
"""

import asyncio
import threading
import time

import pytest

from events import asyncbridge


class Sends:
    """A coroutine that 'sends' slowly and notes what happened to it, thread-safely."""

    def __init__(self, *, send_seconds: float, unwind_seconds: float = 0.0) -> None:
        self.send_seconds, self.unwind_seconds = send_seconds, unwind_seconds
        self.lock = threading.Lock()
        self.log: list[str] = []

    def note(self, what: str) -> None:
        with self.lock:
            self.log.append(what)

    def seen(self) -> list[str]:
        with self.lock:
            return list(self.log)

    async def send(self) -> str:
        self.note("started")
        try:
            await asyncio.sleep(self.send_seconds)
        except asyncio.CancelledError:
            await asyncio.sleep(self.unwind_seconds)  # e.g. a connection going back to its pool
            self.note("cancelled")
            raise
        self.note("sent")
        return "done"


def test_a_run_within_its_timeout_returns_the_result():
    sends = Sends(send_seconds=0.01)
    assert asyncbridge.run(sends.send(), timeout=5) == "done"
    assert sends.seen() == ["started", "sent"]


def test_a_timed_out_run_is_cancelled_and_has_finished_unwinding_when_run_raises():
    sends = Sends(send_seconds=1.0, unwind_seconds=0.2)
    began = time.monotonic()
    with pytest.raises(TimeoutError):
        asyncbridge.run(sends.send(), timeout=0.2)
    assert time.monotonic() - began >= 0.4  # it waited for the unwinding
    assert sends.seen() == ["started", "cancelled"]
    time.sleep(1.2)  # past the moment the send would have completed
    assert sends.seen() == ["started", "cancelled"]  # nothing was sent after run raised


def test_a_run_that_outlasts_its_cancellation_is_given_up_on_after_the_grace(monkeypatch):
    monkeypatch.setattr(asyncbridge, "CANCEL_GRACE", 0.3)
    sends = Sends(send_seconds=5.0, unwind_seconds=0.6)  # unwinds slower than the grace
    began = time.monotonic()
    with pytest.raises(TimeoutError, match="still running"):
        asyncbridge.run(sends.send(), timeout=0.1)
    assert time.monotonic() - began < 0.6
    assert "sent" not in sends.seen()
