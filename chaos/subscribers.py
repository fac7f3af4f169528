"""Two subscribers that exist only in a chaos run, registered by the run's relays
(`python -m chaos.relay`) and by the run itself before it checks the invariants; the product
never sees them.

- `chaos.poison` fails, every time, for the events whose id hashes to POISON_EVERY's residue
  (about one in ten), and handles every other event. Its short retry schedule makes those
  events dead within seconds: dead for it alone, while it and every other subscriber move on.
- `chaos.slow` sleeps SLOW_SECONDS per batch: it holds only its own thread, and no other
  subscriber waits for it.
"""

import time
import uuid

POISON = "chaos.poison"
SLOW = "chaos.slow"
POISON_EVERY = 10
POISON_RETRIES = (0.2, 0.4, 0.8)  # four attempts in about 1.5 s, then dead
SLOW_SECONDS = 0.4


class PoisonEvent(Exception):
    pass


def is_poison(event_id: uuid.UUID | str) -> bool:
    """Deterministic per event: the run recomputes it when it checks the dead ones."""
    return uuid.UUID(str(event_id)).int % POISON_EVERY == 0


def poison_handler(events) -> None:
    for event in events:
        if is_poison(event.event_id):
            raise PoisonEvent(f"event {event.event_id} is poison for {POISON}")


def slow_handler(events) -> None:
    time.sleep(SLOW_SECONDS)


def register() -> None:
    """Subscribe both (Django must be set up); a second call changes nothing."""
    from events.handlers import ALL_TYPES, subscribe, subscriptions

    known = {sub.name for sub in subscriptions(dynamic=False)}
    if POISON not in known:
        subscribe(
            POISON, ALL_TYPES, poison_handler, transactional=False, retry_schedule=POISON_RETRIES
        )
    if SLOW not in known:
        subscribe(SLOW, ALL_TYPES, slow_handler, transactional=False)
