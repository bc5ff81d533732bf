"""The live feed: this node's events as server-sent events (``text/event-stream``).

Each event of the node's bus is one SSE message, ``event: <type>`` and ``data: <JSON>`` (the event
as ``p2p-orchestrator events --json`` prints it); a comment line every :data:`KEEPALIVE` seconds
keeps proxies from closing a quiet stream.  A page refreshes what it shows when an event arrives
(and every few seconds, for what other nodes do), so a service stopped from the command line is
shown stopped at once, without a reload.

The bus drops events for a subscriber that falls behind (:mod:`p2p_orchestrator.events`); the
feed then says so with a ``dropped`` message, and the page refreshes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import trio

from p2p_orchestrator.events import Event, EventBus

__all__ = ["KEEPALIVE", "event_stream", "sse_message"]

KEEPALIVE = 15.0


def sse_message(kind: str, data: object) -> str:
    """One server-sent event (``data`` as one line of JSON)."""
    return f"event: {kind}\ndata: {json.dumps(data, default=repr, separators=(',', ':'))}\n\n"


async def event_stream(bus: EventBus, *, keepalive: float = KEEPALIVE) -> AsyncIterator[str]:
    """The SSE messages of every event published from now on, until the client goes away."""
    async with bus.subscribe() as subscription:
        yield "retry: 2000\n" + sse_message("hello", {})  # the client knows it is connected
        dropped = 0
        while True:
            event: Event | None = None
            with trio.move_on_after(keepalive):
                event = await subscription.receive()
            if subscription.dropped != dropped:
                dropped = subscription.dropped
                yield sse_message("dropped", {"dropped": dropped})
            yield ": keepalive\n\n" if event is None else sse_message(event.type, event.to_portable_dict())
