"""At most WEBSOCKET_MAX_CONNECTIONS_PER_USER open websockets per user, per server process.

A socket takes a slot as soon as its user is known (after the handshake's one read of its
sign-in, groups and account, before any replay, so a socket over the limit costs the server
that one read) and gives it back
when its application ends, however it ends. One more is accepted, told
`{"kind": "error", "code": "too_many_connections"}` and closed with 4429.

The count is per process, on purpose: what the limit protects is a process's memory, its event
loop and its websocket database threads, which one user's reconnect loop exhausts on the
process it lands on. A count per process needs no Redis on the handshake path (handshakes
still succeed while Redis restarts, docs/realtime.md) and cannot leak: a crashed process takes
its count with it, where a shared count would need expiring, renewed entries to forget a
crashed server's sockets. Behind a balancer one user may therefore hold up to the limit on each
process.
"""

import asyncio
import weakref
from collections import Counter

from django.conf import settings

_open: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Counter[int]]" = (
    weakref.WeakKeyDictionary()
)


def _counts() -> Counter[int]:
    loop = asyncio.get_running_loop()
    if loop not in _open:
        _open[loop] = Counter()
    return _open[loop]


def take_slot(user_id: int) -> bool:
    """Count one more socket of the user; False (nothing counted) at the limit."""
    counts = _counts()
    if counts[user_id] >= settings.WEBSOCKET_MAX_CONNECTIONS_PER_USER:
        return False
    counts[user_id] += 1
    return True


def give_back(user_id: int) -> None:
    counts = _counts()
    counts[user_id] -= 1
    if counts[user_id] <= 0:
        del counts[user_id]


def open_sockets(user_id: int) -> int:
    """The user's sockets open on this process (for tests and metrics)."""
    return _counts()[user_id]
