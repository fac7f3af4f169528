"""The handler registry. Apps subscribe in `AppConfig.ready()`; `events` imports no app.

A handler takes a list of events (a batch, in sequence order) and must be idempotent and
order-tolerant: recompute from the database, never `+= 1`. A *transactional* handler's database
effects commit together with its receipt; a non-transactional one (network effects, such as the
websocket broadcast) runs outside any transaction and is marked done after it returns, which
makes it at-least-once.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from events.models import Event

ALL_TYPES = "*"
HandlerFunc = Callable[[list[Event]], None]


@dataclass(frozen=True)
class Subscription:
    name: str
    types: frozenset[str]
    func: HandlerFunc
    transactional: bool = True

    def accepts(self, event_type: str) -> bool:
        return ALL_TYPES in self.types or event_type in self.types


_registry: dict[str, Subscription] = {}


def subscribe(
    name: str, types: Iterable[str] | str, func: HandlerFunc, *, transactional: bool = True
) -> Subscription:
    if name in _registry:
        raise ValueError(f"handler {name!r} is already subscribed")
    wanted = frozenset([types] if isinstance(types, str) else types)
    subscription = Subscription(name, wanted, func, transactional)
    _registry[name] = subscription
    return subscription


def unsubscribe(name: str) -> None:
    _registry.pop(name, None)


def subscriptions() -> list[Subscription]:
    return list(_registry.values())


def subscription(name: str) -> Subscription:
    try:
        return _registry[name]
    except KeyError:
        raise KeyError(
            f"no handler named {name!r}; known: {', '.join(sorted(_registry))}"
        ) from None
