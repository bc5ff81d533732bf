"""``FrameSender``: writes an :class:`~p2p_orchestrator.wire.RpcConnection`'s frames to a stream.

Three rules make a stream of frames safe to share between tasks:

* Frames go out whole and in the order the connection produced them: the
  connection's :meth:`~p2p_orchestrator.wire.RpcConnection.send` and the write
  happen under one lock, so two tasks never interleave their bytes.
* A write is shielded from cancellation: a frame cut in half by a cancelled task
  would corrupt the stream for everyone else on it.
* A write has a deadline instead: a peer that stops reading (so Yamux's window
  stays shut) gets its stream reset after ``write_timeout`` seconds, and the
  writer sees :class:`~p2p_orchestrator.node.host._stream.StreamBroken`.
"""

from __future__ import annotations

import trio

from p2p_orchestrator.node.host._stream import NetStream, StreamBroken
from p2p_orchestrator.wire import Message, RpcConnection

__all__ = ["FrameSender"]


class FrameSender:
    """Serialised, deadline-bound writes of one connection's frames; see the module docstring."""

    def __init__(self, stream: NetStream, conn: RpcConnection, *, write_timeout: float) -> None:
        self._stream = stream
        self._conn = conn
        self._write_timeout = write_timeout
        self._lock = trio.Lock()

    async def send(self, msg: Message) -> None:
        """Send ``msg``.

        Raises :class:`~p2p_orchestrator.errors.ProtocolError` (nothing was sent,
        the connection is unchanged) when the codec refuses it, and
        :class:`StreamBroken` when the stream cannot take it.
        """
        async with self._lock:
            await self._write(self._conn.send(msg))

    async def flush(self) -> None:
        """Write what the connection produced on its own (``busy`` refusals, a final error notice)."""
        async with self._lock:
            await self._write(self._conn.data_to_send())

    async def _write(self, data: bytes) -> None:
        if not data:
            return
        with trio.CancelScope(shield=True):
            with trio.move_on_after(self._write_timeout) as timer:
                await self._stream.send(data)
            if timer.cancelled_caught:
                await self._stream.reset()
                raise StreamBroken(
                    f"{self._stream.peer_id} did not read a frame within {self._write_timeout:g} s"
                )
