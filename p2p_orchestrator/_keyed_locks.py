"""``KeyedLocks``: one :class:`trio.Lock` per key, kept only while someone holds or awaits it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

__all__ = ["KeyedLocks"]


class KeyedLocks:
    """Serialise work per key (a service name, a peer ID) without a lock left behind per key.

    ``async with locks.hold(key): ...``.  Keys can come from peers (the peer IDs listed in a
    swarm offer), so a lock nobody holds or waits for is dropped at once: the table holds at
    most the keys in use.
    """

    def __init__(self) -> None:
        self._locks: dict[str, trio.Lock] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold ``key``'s lock for the body (waiting for its holder first)."""
        lock = self._locks.setdefault(key, trio.Lock())
        try:
            async with lock:
                yield
        finally:
            # Released to a waiter, the lock is still locked; otherwise nobody needs it now.
            if not lock.locked() and lock.statistics().tasks_waiting == 0 and self._locks.get(key) is lock:
                del self._locks[key]
