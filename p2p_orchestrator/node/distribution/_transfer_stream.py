"""``TransferStream``: the transfer protocol's messages on one libp2p stream, with deadlines.

It joins a :class:`~p2p_orchestrator.node.host._stream.NetStream` (bytes, typed failures) and a
:class:`~p2p_orchestrator.transfer.TransferChannel` (frames, checked messages):

* :meth:`TransferStream.receive` returns the next message, or ``None`` at a clean EOF -- which
  is never a success by itself: a reset may read as EOF too (trap 2 of ``py-libp2p-notes.md``),
  so only a ``result`` ends a transfer well.  A failed stream raises
  :class:`~p2p_orchestrator.node.host._stream.StreamBroken`; bytes that break the protocol raise
  :class:`~p2p_orchestrator.errors.ProtocolError` (or ``ServiceDistributionError`` for a bad
  manifest).  It has no deadline of its own: the caller wraps it in a
  :class:`~p2p_orchestrator.node.host._read_deadline.MessageDeadline`.
* :meth:`TransferStream.send` and :meth:`TransferStream.send_frame` write one frame whole, with
  the writer every codec adapter shares (:func:`~p2p_orchestrator.node.host._stream.frame_writer`):
  under a lock (two tasks never interleave frames), shielded from cancellation (a frame cut in
  half would corrupt the stream), and within ``write_timeout`` -- a peer that stops reading has
  its stream reset, and the writer gets ``StreamBroken``.
* :meth:`TransferStream.close` and :meth:`TransferStream.reset` never raise.
"""

from __future__ import annotations

import logging

import trio

from p2p_orchestrator.errors import ProtocolError
from p2p_orchestrator.node.host._stream import NetStream, StreamBroken, frame_writer
from p2p_orchestrator.transfer import TransferChannel, TransferMessage
from p2p_orchestrator.wire import Sentinel

__all__ = ["OUTBOX", "Outbox", "TransferBytes", "TransferStream"]

_READ_BYTES = 65536
"""Bytes read at most while a frame's length is not known (more once it is: the rest of the frame)."""

log = logging.getLogger("p2p_orchestrator.transfer")

OUTBOX = 64
"""Messages an :class:`Outbox` holds for its stream (control messages: a few per chunk)."""


class TransferBytes:
    """Bytes a node's transfer streams moved, both ways, since it started (for its metrics)."""

    __slots__ = ("received", "sent")

    def __init__(self) -> None:
        self.sent = 0
        self.received = 0


class TransferStream:
    """One transfer stream; see the module docstring."""

    def __init__(
        self,
        stream: NetStream,
        *,
        write_timeout: float,
        max_archive_bytes: int,
        counted: TransferBytes | None = None,
    ) -> None:
        self.net = stream
        self._counted = counted or TransferBytes()
        self.peer_id = stream.peer_id
        """The remote peer, as authenticated by the connection's Noise handshake."""
        self.channel = TransferChannel(max_total_bytes=max_archive_bytes)
        self._writer = frame_writer(
            stream,
            self.channel.send,
            timeout=write_timeout,
            stalled=lambda size: (
                f"{self.peer_id} did not take a {size}-byte frame within {write_timeout:g} s"
            ),
        )

    @property
    def failure(self) -> str | None:
        """Why this side ended the stream, when a write deadline did (for the error a reader reports)."""
        return self._writer.failure

    async def receive(self) -> TransferMessage | None:
        """The next message; ``None`` at a clean EOF (see the module docstring)."""
        while True:
            message = self.channel.next_message()
            if not isinstance(message, Sentinel):
                return message
            if message is Sentinel.CLOSED:
                return None
            # The rest of a large frame is due: let it gather and take it in one read.
            needed = self.channel.bytes_needed
            gather = needed if needed > _READ_BYTES else 0
            pieces = await self.net.receive_pieces(max(needed, _READ_BYTES), gather=gather)
            for data in pieces:  # as they arrived: the decoder keeps them, uncopied
                self._counted.received += len(data)
                self.channel.receive_data(data)

    async def send(self, message: TransferMessage) -> None:
        """Write ``message`` (``ProtocolError`` if it cannot be encoded; nothing is written then)."""
        await self.send_frame(self.channel.send(message))

    async def send_frame(self, frame: bytes) -> None:
        """Write one encoded frame whole, within the write deadline; ``StreamBroken`` otherwise."""
        await self._writer.write(frame)
        self._counted.sent += len(frame)

    async def send_last(self, message: TransferMessage) -> None:
        """Send one last message (a refusal, an abort) if the peer takes it, then close; never raises."""
        await self._send_quietly(message)
        await self.close()

    async def refuse(self, message: TransferMessage) -> None:
        """Refuse the stream unread: ``message``, then our EOF; a peer that goes on sending is reset.

        What the peer still sends is dropped (at most 256 KiB, for at most 5 s) until its EOF.
        Never raises.
        """
        await self._send_quietly(message)
        await self.net.close_and_discard(max_bytes=256 * 1024, time_limit=5.0)

    async def _send_quietly(self, message: TransferMessage) -> None:
        try:
            await self.send(message)
        except (StreamBroken, ProtocolError) as exc:
            log.debug("could not send %s to %s: %s", message.TYPE, self.peer_id, exc)

    async def close(self) -> None:
        """Half-close our side (a clean end after our last frame); never raises."""
        await self.net.close()

    async def reset(self) -> None:
        """Abort the stream both ways; never raises."""
        await self.net.reset()


class Outbox:
    """Messages for one stream, written in order by a task of their own (:meth:`run`).

    Whoever queues a message (:meth:`put`) never waits on the peer.  A peer that stops reading
    its connection -- it went away without closing it, or its host froze -- then blocks only
    this stream's writer (for the write deadline, and at most the Noise guard's 30 s for the
    frame under way), not a task that serves other peers too; and a full queue says at once
    that the peer does not keep up.
    """

    def __init__(self, stream: TransferStream, size: int = OUTBOX) -> None:
        self.stream = stream
        self._send, self._receive = trio.open_memory_channel[TransferMessage](size)

    def put(self, message: TransferMessage) -> bool:
        """Queue ``message``; ``False`` when the queue is full, closed, or its writer ended (nothing queued)."""
        try:
            self._send.send_nowait(message)
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            return False
        return True

    def close(self) -> None:
        """No more messages: the writer writes what is queued, then half-closes the stream."""
        self._send.close()

    async def run(self) -> StreamBroken | None:
        """Write the queued messages until :meth:`close`; the failure that ended it, if one did."""
        try:
            async with self._receive:
                async for message in self._receive:
                    await self.stream.send(message)
        except StreamBroken as exc:
            return exc
        finally:
            await self.stream.close()
        return None
