"""The subscriber registry. Apps subscribe in `AppConfig.ready()`; `events` imports no app.

Every subscription is an independent subscriber of the EventLog (docs/events.md): it has its own
position, its own failures and its own outages, and no subscriber waits for another.

A handler takes a list of events (a batch, in sequence order) and must be idempotent and
order-tolerant: recompute from the database, never `+= 1`. A *transactional* handler's database
effects commit in one transaction with its new position, so they happen exactly once; a
non-transactional one (network effects: the websocket broadcast, the message bus, webhooks)
runs outside any transaction and its position moves after it returns, which makes it
at-least-once.

`probe` says whether the store a handler needs (Redis, the broker) answers: when a handler
fails and its probe (or the database's) fails too, that is an outage and no attempt is spent;
when the probes pass, the events failed and are retried with backoff, then dead. Providers add
subscriptions that come and go with data (one per webhook endpoint).
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from events.models import Event

ALL_TYPES = "*"
HandlerFunc = Callable[[list[Event]], None]
Probe = Callable[[], None]  # raises when the store is unreachable

# Retries of a failed event: exponential from 1 s, capped at 5 minutes, dead after 10 attempts.
DEFAULT_RETRY_SCHEDULE: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class PartialFailure(Exception):
    """Raised by a network handler that delivered only part of its batch: `failures` maps the
    sequence of each event that failed to its error, and every other event succeeded. The relay
    then records those failures as they are, instead of trying each event alone (a receiver
    that is down would otherwise cost a timeout per event)."""

    def __init__(self, failures: dict[int, str], message: str = "") -> None:
        super().__init__(message or f"{len(failures)} event(s) failed")
        self.failures = failures


@dataclass(frozen=True)
class Subscription:
    name: str
    types: frozenset[str]
    func: HandlerFunc
    transactional: bool = True
    probe: Probe | None = None
    # Delay before attempt n+1 after n failures; dead after len(schedule) + 1 attempts.
    retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    # Where a subscriber seen for the first time starts: "start" (the whole log) or "end"
    # (only events published from then on, e.g. a webhook endpoint added later).
    starts_at: str = "start"
    # How long after a step starts the next may start (None: the relay's `linger`), so that
    # under a steady stream one step carries the events of that window instead of one each.
    # A step after an idle spell, or after a full batch, starts at once either way.
    linger: float | None = None

    def accepts(self, event_type: str) -> bool:
        return ALL_TYPES in self.types or event_type in self.types

    @property
    def all_types(self) -> bool:
        return ALL_TYPES in self.types

    @property
    def max_attempts(self) -> int:
        return len(self.retry_schedule) + 1


_registry: dict[str, Subscription] = {}
_providers: dict[str, Callable[[], list[Subscription]]] = {}


def subscribe(
    name: str,
    types: Iterable[str] | str,
    func: HandlerFunc,
    *,
    transactional: bool = True,
    probe: Probe | None = None,
    retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE,
    starts_at: str = "start",
    linger: float | None = None,
) -> Subscription:
    if name in _registry:
        raise ValueError(f"handler {name!r} is already subscribed")
    subscription = Subscription(
        name, wanted_types(types), func, transactional, probe, tuple(retry_schedule), starts_at,
        linger,
    )  # fmt: skip
    _registry[name] = subscription
    return subscription


def wanted_types(types: Iterable[str] | str) -> frozenset[str]:
    return frozenset([types] if isinstance(types, str) else types)


def unsubscribe(name: str) -> None:
    _registry.pop(name, None)


def add_provider(name: str, provider: Callable[[], list[Subscription]]) -> None:
    """`provider()` returns subscriptions that depend on data (it may query the database)."""
    _providers[name] = provider


def remove_provider(name: str) -> None:
    _providers.pop(name, None)


def subscriptions(*, dynamic: bool = True) -> list[Subscription]:
    found = list(_registry.values())
    if dynamic:
        for provider in list(_providers.values()):
            found.extend(provider())
    return found


def subscription(name: str) -> Subscription:
    for sub in subscriptions():
        if sub.name == name:
            return sub
    known = ", ".join(sorted(sub.name for sub in subscriptions()))
    raise KeyError(f"no subscriber named {name!r}; known: {known}")
