"""A websocket consumer's link to the channel layer: its group memberships, kept fresh, and
riding out a channel-layer outage (a Redis restart) without closing the socket.

Memberships expire (`group_expiry`, CHANNEL_GROUP_EXPIRY): a consumer that died without
leaving its groups (a killed server) drops out of them by itself, and a live one re-joins
every third of the expiry. A live consumer's re-joins, its recovery and nothing else run in one
task per consumer (`LayerLink._keep`), so there is never more than one background task per
socket, however long an outage lasts.

When the layer fails (receiving, joining or re-joining raises a Redis or socket error), the
link turns degraded: the client gets `{"kind": "degraded"}`, the consumer stops receiving from
the layer, and the task retries with jittered backoff (RETRY_FIRST doubling to RETRY_MAX
seconds). Once the layer answers it re-joins the groups (a restarted Redis has lost them),
replays from the EventLog what the client may have missed since the last event it was sent,
sends `{"kind": "recovered", "through": N}` and receives live again. A failure seen by one
consumer degrades every consumer of the same layer in the process: after a Redis restart some
of them would otherwise receive again without noticing that their memberships are gone.
"""

import asyncio
import logging
import random
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from django.db import Error as DatabaseError
from redis.exceptions import RedisError

log = logging.getLogger("realtime")

# What a channel layer raises while its Redis is unreachable or restarting (redis-py's errors,
# and refused or reset sockets, timeouts included).
LAYER_ERRORS = (RedisError, OSError)
RETRY_FIRST = 0.25  # seconds before the first retry of an outage
RETRY_MAX = 2.0
REFRESHES_PER_EXPIRY = 3
LEAVE_TIMEOUT = 2.0  # leaving groups at disconnect: given up on after this (they expire anyway)
# A join that hangs (a Redis that accepts connections but does not answer) counts as failed.
JOIN_TIMEOUT = 5.0

_links: "weakref.WeakSet[LayerLink]" = weakref.WeakSet()


def jittered(seconds: float) -> float:
    """`seconds` give or take a quarter, so consumers that failed together retry apart."""
    return seconds * random.uniform(0.75, 1.25)


class LayerLink:
    """`receive` stands in for the consumer's channel-layer receive; `join` and `leave`
    manage its groups; `start` (after the handshake is accepted) and `stop` bracket the one
    background task.

    `on_degraded()` tells the client; `on_recovered()` replays from the EventLog and tells the
    client; both are the consumer's. A database error in `on_recovered` is retried like a
    layer error."""

    def __init__(
        self,
        layer,
        channel: str,
        *,
        on_degraded: Callable[[], Awaitable[None]],
        on_recovered: Callable[[], Awaitable[None]],
    ) -> None:
        self.layer, self.channel = layer, channel
        self.on_degraded, self.on_recovered = on_degraded, on_recovered
        self.groups: list[str] = []
        self.healthy = asyncio.Event()
        self.healthy.set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        expiry = getattr(layer, "group_expiry", None)
        self.refresh_every = expiry / REFRESHES_PER_EXPIRY if expiry else None
        _links.add(self)

    # --- the consumer's side ------------------------------------------------------------

    async def receive(self) -> dict[str, Any]:
        """The next message from the layer; waits out an outage instead of raising."""
        while True:
            await self.healthy.wait()
            try:
                return await receive_uncancelled(self.layer, self.channel)
            except LAYER_ERRORS as exc:
                self.failed(exc)

    async def join(self, groups: list[str]) -> None:
        """Join `groups` (Channels group names). Never raises for a layer outage: the link is
        then degraded and joins them when the layer answers."""
        self.groups = list(groups)
        try:
            await self._join_all()
        except LAYER_ERRORS as exc:
            self.failed(exc)

    async def leave(self) -> None:
        """Leave the groups, if the layer answers soon; otherwise they expire."""
        groups, self.groups = self.groups, []
        try:
            async with asyncio.timeout(LEAVE_TIMEOUT):
                for group in groups:
                    await self.layer.group_discard(group, self.channel)
        except (*LAYER_ERRORS, TimeoutError):
            pass

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._keep(), name=f"layer-link {self.channel}")

    async def stop(self) -> None:
        _links.discard(self)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])  # until it has unwound; a cancellation of ours propagates
            if not task.cancelled():
                task.exception()  # logged by _keep already; retrieved so asyncio does not warn

    @property
    def degraded(self) -> bool:
        return not self.healthy.is_set()

    def failed(self, exc: BaseException) -> None:
        """The layer failed for this consumer: degrade every link on the same layer."""
        if self.degraded:
            return
        log.warning("channel layer unavailable (%s: %s)", type(exc).__name__, exc)
        for link in list(_links):
            if link.layer is self.layer:
                link._degrade()

    # --- the background task ------------------------------------------------------------

    def _degrade(self) -> None:
        self.healthy.clear()
        self._wake.set()

    async def _join_all(self) -> None:
        async with asyncio.timeout(JOIN_TIMEOUT):  # TimeoutError is an OSError: a layer error
            for group in self.groups:
                await self.layer.group_add(group, self.channel)

    async def _keep(self) -> None:
        try:
            await self._keep_going()
        except Exception:
            log.exception("the channel-layer link of %s stopped", self.channel)
            raise

    async def _keep_going(self) -> None:
        while True:
            if self.degraded:
                await self._recover()
                continue
            timeout = jittered(self.refresh_every) if self.refresh_every else None
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            if not self.degraded:
                try:
                    await self._join_all()  # re-joining refreshes the memberships
                except LAYER_ERRORS as exc:
                    self.failed(exc)

    async def _recover(self) -> None:
        await self.on_degraded()
        delay = RETRY_FIRST
        while True:
            await asyncio.sleep(jittered(delay))
            delay = min(delay * 2, RETRY_MAX)
            try:
                await self._join_all()
                await self.on_recovered()
            except (*LAYER_ERRORS, DatabaseError) as exc:
                log.debug("still degraded (%s: %s)", type(exc).__name__, exc)
                continue
            self._wake.clear()
            self.healthy.set()
            return


async def receive_uncancelled(layer, channel: str) -> dict[str, Any]:
    """`layer.receive(channel)`, which a cancellation (a consumer disconnecting, a timeout)
    never cuts short. channels_redis pops every consumer's messages of this process through one
    receive at a time, and a message it pops carries all of the process's members of a group;
    cancelled mid-pop, that receive loses the message for all of them (seen in the chaos run;
    channels_redis issue 366). So the receive runs on in its own task until its pop returns and
    hands what it popped to the other consumers' buffers; only this caller's own message, if
    that was it, is dropped with the caller."""
    task = asyncio.ensure_future(layer.receive(channel))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(_discard_result)
        raise


def _discard_result(task: asyncio.Task) -> None:
    """The result of a receive whose consumer has gone (retrieved, so asyncio does not log
    an exception nobody awaited)."""
    if not task.cancelled():
        task.exception()
