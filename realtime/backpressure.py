"""A websocket whose client does not read holds a bounded backlog in the server, not an
ever-growing one.

daphne (Twisted) writes a frame to the socket and keeps what the kernel does not take in the
transport's write buffer, without limit; the ASGI `send` returns at once either way. A replay
or a stream of live events sent to a client that does not read therefore grew the server's
memory for as long as the socket lived (250 such sockets took daphne from 189 to 380 MiB in
30 s). Twisted's flow control is the way out: a transport tells its registered push producer
to pause once its buffer passes `bufferSize` (64 KiB) and to resume once the buffer has
drained. `TransportWatch` is that producer for a websocket's transport. The consumer awaits
`writable()` before each frame, so what one socket holds unsent is at most a buffer and a frame
(plus the kernel's socket buffer); a client that takes nothing for
WEBSOCKET_SEND_TIMEOUT_SECONDS is closed (4408 `slow_consumer`, docs/realtime.md) and its
backlog freed.

daphne left a producer on the transport (the HTTP channel the upgrade came through, which
pauses reading the socket while writes are stuck); the watch stands in front of it and passes
every call on, so that stays as it was.

The transport is reached from daphne's `send`, which is
`functools.partial(server.handle_reply, protocol)`, at the outside of the websocket stack
(`watch_transport`, realtime/auth.py). Under another server, a TLS transport of daphne's own
(which keeps its producer elsewhere) or a test's communicator the scope's `transport_watch` is
None and frames are sent without waiting, as before. tests/realtime/test_backpressure.py runs
a real daphne, so a daphne or Twisted release that changes any of this fails there.
"""

import asyncio
import functools
import logging

log = logging.getLogger("realtime")

SCOPE_KEY = "transport_watch"


class TransportWatch:
    """The push producer of one websocket's transport: knows whether the transport takes more
    bytes now. Twisted calls it on the event loop's thread (daphne runs Twisted on asyncio)."""

    def __init__(self, inner=None, *, paused: bool = False, transport=None) -> None:
        self.inner = inner
        self.transport = transport
        self._writable = asyncio.Event()
        if not paused:
            self._writable.set()

    # --- IPushProducer, called by the transport -----------------------------------------

    def pauseProducing(self) -> None:  # Twisted's IPushProducer
        self._writable.clear()
        if self.inner is not None:
            self.inner.pauseProducing()

    def resumeProducing(self) -> None:
        self._writable.set()
        if self.inner is not None:
            self.inner.resumeProducing()

    def stopProducing(self) -> None:
        self._writable.set()  # the connection is gone: whatever is sent now goes nowhere
        if self.inner is not None:
            self.inner.stopProducing()

    # --- the consumer's side ------------------------------------------------------------

    @property
    def gone(self) -> bool:
        """The connection is lost: the client reads nothing more, and daphne drops whatever
        is sent. (Twisted's `disconnected`: by then the watch has been unregistered, so its
        stopProducing is not called.)"""
        return bool(getattr(self.transport, "disconnected", False))

    @property
    def paused(self) -> bool:
        return not self._writable.is_set()

    async def writable(self, timeout: float) -> bool:
        """True once the transport takes more bytes; False if it has not within `timeout`."""
        if self._writable.is_set():
            return True
        try:
            async with asyncio.timeout(timeout):
                await self._writable.wait()
        except TimeoutError:
            return False
        return True


def daphne_transport(send):
    """The Twisted transport behind daphne's `send`, or None (another server)."""
    if not isinstance(send, functools.partial) or not send.args:
        return None
    return getattr(send.args[0], "transport", None)


def install(transport) -> TransportWatch | None:
    """Put a watch in front of the transport's producer; None when the transport is not one
    whose producer can be seen (Twisted's FileDescriptor keeps it in `producer`)."""
    if not hasattr(transport, "producer") or not hasattr(transport, "registerProducer"):
        return None
    inner = transport.producer
    if inner is not None and not transport.streamingProducer:
        return None  # a pull producer is never paused: nothing to stand in front of
    paused = bool(getattr(transport, "producerPaused", False))
    watch = TransportWatch(inner, paused=paused, transport=transport)
    if inner is not None:
        transport.unregisterProducer()
    transport.registerProducer(watch, True)
    return watch


class WatchTransport:
    """ASGI middleware: `scope["transport_watch"]` for a websocket served by daphne."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        watch = None
        if scope["type"] == "websocket":
            transport = daphne_transport(send)
            if transport is not None:
                watch = install(transport)
                if watch is None:
                    log.debug("no flow control for %s", type(transport).__name__)
        return await self.app(dict(scope, **{SCOPE_KEY: watch}), receive, send)
