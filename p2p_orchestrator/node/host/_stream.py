"""``NetStream``: a small, typed face of one py-libp2p stream.

py-libp2p streams are untyped at the edges and fail in several ways: a clean
end raises ``StreamEOF``, a remote reset may raise ``StreamReset`` or (when the
muxer has already dropped the stream) look like a clean EOF, and writes fail
with ``StreamClosed``, ``StreamReset`` or muxer errors.  This wrapper turns all
of that into three outcomes the adapters above it handle:

* :meth:`NetStream.receive` returns bytes (at most ``max_bytes``; Yamux gives at
  most 64 KiB per read, so callers loop), or ``b""`` at EOF; :meth:`NetStream.receive_pieces`
  the same bytes as the pieces they arrived in, without copying them;
* anything else that goes wrong raises :class:`StreamBroken`;
* :meth:`NetStream.close` and :meth:`NetStream.reset` never raise (a stream that
  is already gone is closed enough); they log what they swallow.
* :meth:`NetStream.reset` wakes a task blocked in :meth:`NetStream.receive` on
  the same stream (it raises :class:`StreamBroken`): py-libp2p's Yamux drops the
  stream's wake-up event on a local reset without setting it, so such a reader
  would otherwise sleep until its own deadline.
* :func:`frame_writer` writes a codec's frames to it (the shared
  :class:`~p2p_orchestrator._rpc_session.StreamWriter`): a peer that does not
  take a frame in time has the stream reset, and the writer raises
  :class:`StreamBroken`.

Because a reset can look like EOF (trap 2 of ``py-libp2p-notes.md``), EOF is
never taken as success here: the framing layer decides what an EOF means.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import trio

from p2p_orchestrator._rpc_session import StreamWriter
from p2p_orchestrator.node.host import _yamux_reads

__all__ = ["NetStream", "Piece", "RawStream", "StreamBroken", "frame_writer", "reset_raw"]

log = logging.getLogger("p2p_orchestrator.node")

M = TypeVar("M")

Piece = bytes | memoryview
"""A run of received bytes, read-only (a ``memoryview`` is of an immutable ``bytes``)."""

_RECEIVE_BYTES = 65536
_CLOSE_SECONDS = 2.0  # bound on a close or reset, which run shielded from cancellation


class StreamBroken(Exception):
    """The stream failed (reset, closed under us, or its connection died)."""


class _PeerIdLike(Protocol):
    def to_base58(self) -> str: ...


class _MuxedConnLike(Protocol):
    peer_id: _PeerIdLike


class RawStream(Protocol):
    """The part of libp2p's ``INetStream`` this package uses."""

    muxed_conn: _MuxedConnLike

    async def read(self, n: int | None = None) -> bytes: ...

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...

    async def reset(self) -> None: ...


class NetStream:
    """One libp2p stream with typed failures; see the module docstring."""

    def __init__(self, raw: RawStream) -> None:
        self.raw = raw
        self.peer_id: str = raw.muxed_conn.peer_id.to_base58()
        """The remote peer, as authenticated by the connection's Noise handshake."""
        self._done = False
        self._reset_done = False
        self._receiving: trio.CancelScope | None = None

    @property
    def done(self) -> bool:
        """Whether :meth:`close` or :meth:`reset` was called."""
        return self._done

    async def receive(self, max_bytes: int = _RECEIVE_BYTES, *, gather: int = 0) -> bytes:
        """Up to ``max_bytes`` bytes; ``b""`` at EOF (which may also be a remote reset).

        ``gather``: bytes that are due (the rest of a frame) and may be waited for first, so
        that one read takes them (see ``_yamux_reads``).  Raises :class:`StreamBroken` if the
        stream fails or is reset (by us, even meanwhile).
        """
        pieces = await self.receive_pieces(max_bytes, gather=gather)
        return pieces[0] if len(pieces) == 1 and type(pieces[0]) is bytes else b"".join(pieces)

    async def receive_pieces(self, max_bytes: int = _RECEIVE_BYTES, *, gather: int = 0) -> list[Piece]:
        """:meth:`receive`, as the read-only pieces the bytes arrived in (no copy); ``[b""]`` at EOF."""
        pieces: list[Piece] = [b""]
        with trio.CancelScope() as scope:
            if self._reset_done:
                scope.cancel()
            self._receiving = scope
            try:
                if gather > 1:
                    await _yamux_reads.gather(self.raw, gather)
                taken = await _yamux_reads.take(self.raw, max_bytes)
                pieces = taken if taken else [await self.raw.read(max_bytes)]
            except EOFError:  # libp2p's StreamEOF derives from EOFError
                return [b""]
            except trio.Cancelled:
                raise
            except Exception as exc:
                raise StreamBroken(
                    f"reading from {self.peer_id} failed: {type(exc).__name__}: {exc}"
                ) from exc
            finally:
                self._receiving = None
        if scope.cancelled_caught:
            raise StreamBroken(f"the stream of {self.peer_id} was reset")
        return pieces

    async def send(self, data: bytes) -> None:
        """Write all of ``data``; :class:`StreamBroken` if the stream cannot take it."""
        try:
            await self.raw.write(data)
        except trio.Cancelled:
            raise
        except Exception as exc:
            raise StreamBroken(f"writing to {self.peer_id} failed: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        """Half-close our side (FIN); never raises, and finishes even when cancelled."""
        if self._done:
            return
        self._done = True
        with trio.CancelScope(shield=True), trio.move_on_after(_CLOSE_SECONDS):
            try:
                await self.raw.close()
                return
            except Exception as exc:
                log.debug("closing a stream of %s failed (%s); resetting it", self.peer_id, exc)
        await self._reset()

    async def close_and_discard(self, *, max_bytes: int, time_limit: float) -> None:
        """Half-close, then drop what the peer still sends until its EOF; never raises.

        For a stream refused without being read: the peer gets our last frame and the EOF, and
        its own close ends the stream.  A peer that goes on sending past ``max_bytes`` bytes or
        ``time_limit`` seconds has the stream reset, and nothing it sent is kept.
        """
        await self.close()
        discarded = 0
        with trio.move_on_after(time_limit):
            try:
                while discarded <= max_bytes:
                    data = await self.receive()
                    if not data:
                        return
                    discarded += len(data)
            except StreamBroken:
                return
        await self._reset()

    async def reset(self) -> None:
        """Abort the stream in both directions; never raises, and finishes even when cancelled."""
        if self._done:
            return
        self._done = True
        await self._reset()

    async def _reset(self) -> None:
        self._reset_done = True
        if self._receiving is not None:
            self._receiving.cancel()
        with trio.CancelScope(shield=True), trio.move_on_after(_CLOSE_SECONDS):
            try:
                await self.raw.reset()
            except Exception as exc:
                log.debug("resetting a stream of %s failed: %s", self.peer_id, exc)


async def reset_raw(raw: Any) -> None:
    """Reset a py-libp2p stream that never became a :class:`NetStream`; never raises."""
    with trio.CancelScope(shield=True), trio.move_on_after(_CLOSE_SECONDS):
        try:
            await raw.reset()
        except Exception as exc:
            log.debug("could not reset a stream: %s", exc)


def frame_writer(
    stream: NetStream, encode: Callable[[M], bytes], *, timeout: float, stalled: Callable[[int], str]
) -> StreamWriter[M]:
    """A :class:`~p2p_orchestrator._rpc_session.StreamWriter` of ``stream``: a stalled write resets it
    and raises :class:`StreamBroken`."""
    return StreamWriter(
        stream.send, stream.reset, encode, timeout=timeout, stalled=stalled, broken=StreamBroken
    )
