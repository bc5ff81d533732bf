"""``ChannelPool``: one reusable RPC stream per peer, opened on demand.

Opening a libp2p stream costs a multistream-select round trip; reusing one
stream for every call to a peer (requests are multiplexed by id) removes it
from all calls but the first, which is why remote calls beat a
new-stream-per-call client.  The rule:

* The first call to a peer opens its stream (dialling the peer if needed); calls
  arriving meanwhile wait for that one opening instead of racing their own.
* Later calls share the stream, at most ``max_in_flight`` at once (the peer's
  codec answers ``busy`` beyond its own limit; we stay under it).
* When the stream ends (the peer closed it, it broke, or it rested too long),
  the next call opens a new one.  A call that had not been sent yet when the
  stream ended is retried once on the new stream; a call that was sent is not
  (the peer may have run it), it fails with ``channel_closed``.

Each stream's reader task runs in the node's nursery.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from p2p_orchestrator._keyed_locks import KeyedLocks
from p2p_orchestrator.errors import ServiceCallError
from p2p_orchestrator.node.host._stream import NetStream
from p2p_orchestrator.node.rpc._client import ClientChannel, NotSent
from p2p_orchestrator.node.rpc._server import Deadlines

__all__ = ["ChannelPool", "StreamOpener"]

log = logging.getLogger("p2p_orchestrator.node")

StreamOpener = Callable[[str], Awaitable[NetStream]]
"""Opens a new RPC stream to a peer ID, or raises ``ServiceCallError(code="peer_unreachable")``."""


class ChannelPool:
    """Our reusable RPC streams, one per peer; see the module docstring."""

    def __init__(
        self,
        nursery: trio.Nursery,
        open_stream: StreamOpener,
        *,
        deadlines: Deadlines,
        max_in_flight: int,
    ) -> None:
        self._nursery = nursery
        self._open_stream = open_stream
        self._deadlines = deadlines
        self._max_in_flight = max_in_flight
        self._channels: dict[str, ClientChannel] = {}
        self._opening = KeyedLocks()
        self._closed = False

    async def call(self, peer_id: str, method: str, params: dict[str, Any], *, time_limit: float) -> Any:
        """Call ``method`` on ``peer_id``, waiting at most ``time_limit`` seconds in all.

        Raises the remote error as its own class, or ``ServiceCallError`` with
        code ``call_timeout``, ``peer_unreachable`` or ``channel_closed``.
        """
        with trio.move_on_after(time_limit):
            return await self._call(peer_id, method, params)
        raise ServiceCallError(
            f"{method} on peer {peer_id} did not answer within {time_limit:g} s", code="call_timeout"
        )

    async def _call(self, peer_id: str, method: str, params: dict[str, Any]) -> Any:
        last: NotSent | None = None
        for attempt in range(2):
            channel = await self._channel(peer_id)
            try:
                return await channel.call(method, params)
            except NotSent as exc:
                log.debug("call %s to %s not sent (%s); attempt %d", method, peer_id, exc, attempt + 1)
                last = exc
        raise ServiceCallError(f"{method} on peer {peer_id}: {last}", code="channel_closed")

    async def _channel(self, peer_id: str) -> ClientChannel:
        channel = self._channels.get(peer_id)
        if channel is not None and channel.usable:
            return channel
        async with self._opening.hold(peer_id):
            channel = self._channels.get(peer_id)
            if channel is not None and channel.usable:
                return channel
            if self._closed:
                raise ServiceCallError("the node is shutting down", code="node_closed")
            stream = await self._open_stream(peer_id)
            channel = ClientChannel(
                stream,
                max_in_flight=self._max_in_flight,
                write_timeout=self._deadlines.write,
                read_timeout=self._deadlines.read,
                idle_close=self._deadlines.idle / 2,
            )
            self._channels[peer_id] = channel
            self._nursery.start_soon(self._run, peer_id, channel, name=f"rpc channel to {peer_id}")
        return channel

    async def _run(self, peer_id: str, channel: ClientChannel) -> None:
        try:
            await channel.run()
        finally:
            if self._channels.get(peer_id) is channel:
                del self._channels[peer_id]

    def channel_count(self) -> int:
        """Open channels (for tests and statistics)."""
        return len(self._channels)

    async def aclose(self) -> None:
        """Close every channel; their reader tasks end when the peers close their sides."""
        self._closed = True
        for channel in list(self._channels.values()):
            await channel.aclose()
