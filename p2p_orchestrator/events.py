"""The event bus: what happened to which service, for anyone who listens.

Publishing never blocks the publisher.  Each subscriber has a bounded buffer; a
subscriber that falls behind loses the events that do not fit and can see how
many through :attr:`Subscription.dropped`.  The bus also keeps the most recent
events so that a new watcher can start with some history.
"""

from __future__ import annotations

import collections
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

from p2p_orchestrator._clock import utc_now_iso

__all__ = ["EVENT_TYPES", "Event", "EventBus", "Subscription"]

EVENT_TYPES = frozenset(
    {
        "service_installed",
        "service_install_failed",
        "service_started",
        "service_stopped",
        "service_failed",
        "service_restarted",
        "service_reverted",
        "service_rolled_back",
        "service_uninstalled",
        "service_health",
        "distribution_progress",
        "service_distributed",
        "update_installed",
        "update_succeeded",
        "update_failed",
        "update_refused",
        "update_waiting",
        "rollout_started",
        "rollout_progress",
        "rollout_finished",
        "replica_started",
        "replica_stopped",
        "replicas_scaled",
    }
)


@dataclass(frozen=True)
class Event:
    """One thing that happened, with the service it happened to."""

    type: str
    service: str | None
    version: str | None
    time: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON/CBOR-able form sent to watchers."""
        return {
            "type": self.type,
            "service": self.service,
            "version": self.version,
            "time": self.time,
            "data": dict(self.data),
        }

    def to_portable_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` as plain JSON types, data no codec could carry shown as its ``repr``."""
        portable: dict[str, Any] = json.loads(json.dumps(self.to_dict(), default=repr))
        return portable


class Subscription:
    """An async iterator over the events published after it was opened."""

    def __init__(self, receive: trio.MemoryReceiveChannel[Event]) -> None:
        self._receive = receive
        self.dropped = 0
        """Events that did not fit in the buffer and were lost to this subscriber."""

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._receive.__aiter__()

    async def receive(self) -> Event:
        """The next event (waits for it)."""
        return await self._receive.receive()


class EventBus:
    """Fan-out of :class:`Event` s to subscribers; see the module docstring."""

    def __init__(self, *, history: int = 1000) -> None:
        self._subscribers: dict[Subscription, trio.MemorySendChannel[Event]] = {}
        self._history: collections.deque[Event] = collections.deque(maxlen=history)

    def publish(
        self,
        type: str,
        service: str | None = None,
        version: str | None = None,
        **data: Any,
    ) -> Event:
        """Record and deliver an event; never blocks."""
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type!r}")
        event = Event(type=type, service=service, version=version, time=utc_now_iso(), data=data)
        self._history.append(event)
        for subscription, send in self._subscribers.items():
            try:
                send.send_nowait(event)
            except trio.WouldBlock:
                subscription.dropped += 1
        return event

    def recent(self, limit: int = 100) -> list[Event]:
        """The last ``limit`` events, oldest first."""
        if limit <= 0:
            return []
        return list(self._history)[-limit:]

    @asynccontextmanager
    async def subscribe(self, *, buffer: int = 256) -> AsyncIterator[Subscription]:
        """Receive every event published while the context is open."""
        send, receive = trio.open_memory_channel[Event](buffer)
        subscription = Subscription(receive)
        self._subscribers[subscription] = send
        try:
            yield subscription
        finally:
            del self._subscribers[subscription]
            send.close()
            receive.close()
