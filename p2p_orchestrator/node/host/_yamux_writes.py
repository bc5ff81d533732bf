"""Write a guarded Yamux stream's DATA frames with less Python per frame, and wake a writer whose
window opens at once.

The cost.  py-libp2p 0.8.1's ``YamuxStream.write`` paid, for every DATA frame (at most 64 KiB):
the stream's write lock (an async context manager over a semaphore) and its window lock, a slice
of the data and its concatenation with the header (two copies), then ``Yamux._write_frame``
(which unpacks the header again to format a debug line), the connection's write lock,
``SecureSession.write``, the Noise guard's scope (``_noise_guard``), the library's ``write_msg``
and encryption, ``msgio``'s length prefix (a third copy) and the TCP stream's lock -- sixteen
times per MiB a node sends.  And a writer whose send window was used up slept 10 ms at a time
until the window grew, however soon the peer's update came.

The write (:meth:`FittedStream.write`, on a connection that is Noise over TCP):

* the stream's write lock is held for the whole write, so one write's frames are never
  interleaved with another writer's on the same stream (the library took it per frame);
* each frame is one Noise message, built with one copy (header and payload), encrypted by the
  session's cipher state and written by the connection's raw writer under the muxer's write
  lock, so the frames of other streams still go out between ours, in nonce order;
* frames are written in :func:`~._noise_guard.write_scope`, as the guard writes every message,
  one scope for up to :data:`BATCH` frames instead of one per frame: a cancelled writer stops
  after those (256 KiB: milliseconds of a slow link), never in the middle of a message;
* a writer out of window waits for an event set the moment the window grows or the stream
  closes, with the library's limit of :data:`WINDOW_WAIT` seconds.

The bytes on the wire are the ones the library writes: the same frames (of
:data:`~libp2p.security.noise.io.MAX_PLAINTEXT_LENGTH`, one Noise message each: see
:class:`FittedStream`) in the same messages.  Any other connection goes the library's way.
"""

from __future__ import annotations

import struct
import types
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import trio
from libp2p.security.noise.io import MAX_PLAINTEXT_LENGTH, NoiseTransportReadWriter
from libp2p.security.secure_session import SecureSession
from libp2p.stream_muxer.exceptions import MuxedStreamError
from libp2p.stream_muxer.yamux.yamux import HEADER_SIZE, TYPE_DATA, YAMUX_HEADER_FORMAT, YamuxStream

from p2p_orchestrator.node.host._noise_guard import give_up, write_scope

__all__ = ["BATCH", "WINDOW_WAIT", "FittedStream"]

BATCH = 4
"""Frames written in one shielded scope: how far a cancelled writer may go on before it stops."""

WINDOW_WAIT = 5.0
"""Seconds a writer waits for the peer to grant window before the write fails (the library's)."""

_HEADER = struct.Struct(YAMUX_HEADER_FORMAT)
_MAX_PAYLOAD = MAX_PLAINTEXT_LENGTH - HEADER_SIZE
_TRANSPORT = "_p2p_orchestrator_transport"
_WAITER = "_p2p_orchestrator_window_waiter"


@dataclass(frozen=True)
class _Transport:
    """What a Yamux connection's frames are written with when it is Noise over TCP."""

    writer: Any  # the NoiseTransportReadWriter: its cipher state, and what the guard closes
    raw_write: Callable[[bytes], Awaitable[None]]


def _transport_of(conn: Any) -> _Transport | None:
    """The Noise transport under a Yamux connection, or ``None`` (then the library writes)."""
    state = conn.__dict__
    if _TRANSPORT not in state:
        session = conn.secured_conn
        writer = session.conn if isinstance(session, SecureSession) else None
        transport = None
        if isinstance(writer, NoiseTransportReadWriter):
            transport = _Transport(writer, writer.read_writer.read_write_closer.write)
        state[_TRANSPORT] = transport
    return cast(_Transport | None, state[_TRANSPORT])


def _fitted_write() -> Callable[..., Awaitable[None]]:
    """``YamuxStream.write`` itself, run with frames that fit one Noise message (see :class:`FittedStream`)."""
    write = YamuxStream.write
    names = dict(write.__globals__, MAX_MESSAGE_SIZE=MAX_PLAINTEXT_LENGTH)
    fitted = types.FunctionType(write.__code__, names, write.__name__, write.__defaults__, write.__closure__)
    fitted.__doc__ = write.__doc__
    return cast(Callable[..., Awaitable[None]], fitted)


_library_write = _fitted_write()


def _wake(stream: Any) -> None:
    waiter: trio.Event | None = stream.__dict__.pop(_WAITER, None)
    if waiter is not None:
        waiter.set()


class FittedStream(YamuxStream):
    """A stream of a guarded connection: its DATA frames fit one Noise message, written as above.

    py-libp2p writes frames of 64 KiB (65536 bytes with the header), more than one Noise message
    holds (65519 bytes of plaintext), so every full frame went out as two messages, 65519 and 17
    bytes: two encryptions, two sends, a copy to split it -- and the receiver paid two reads and
    two decryptions, and joined the payload again.  Its frames are of at most
    :data:`MAX_PLAINTEXT_LENGTH` bytes; any Yamux peer takes frames of any size within its window.
    """

    # Data descriptors over the instance's own attributes (set by YamuxStream.__init__), so that
    # every change the muxer makes -- a window update, a close, a reset -- wakes a waiting writer.
    @property
    def send_window(self) -> int:
        return cast(int, self.__dict__["send_window"])

    @send_window.setter
    def send_window(self, value: int) -> None:
        self.__dict__["send_window"] = value
        if value > 0:
            _wake(self)

    @property
    def closed(self) -> bool:
        return cast(bool, self.__dict__["closed"])

    @closed.setter
    def closed(self, value: bool) -> None:
        self.__dict__["closed"] = value
        if value:
            _wake(self)

    async def write(self, data: bytes) -> None:
        """Write all of ``data`` as DATA frames, as far as the peer's window allows at a time."""
        transport = _transport_of(self.conn)
        if transport is None:
            await _library_write(self, data)
            return
        if self.send_closed:
            raise MuxedStreamError("Stream is closed for sending")
        view = memoryview(data)
        sent = 0
        async with self.rw_lock.write_lock():
            while sent < len(view):
                if self.send_closed:
                    raise MuxedStreamError("Stream is closed for sending")
                if self.closed:
                    raise MuxedStreamError("Stream is closed")
                if self.send_window <= 0:
                    await self._wait_for_window()
                    continue
                sent = await self._send_frames(transport, view, sent)

    async def _send_frames(self, transport: _Transport, view: memoryview, sent: int) -> int:
        """Frames from ``sent`` on, up to :data:`BATCH` and what the window allows; the new ``sent``."""
        conn: Any = self.conn
        end = len(view)
        with write_scope() as timer:
            for _ in range(BATCH):
                if sent == end:
                    break
                window = self.send_window
                if window <= 0 or self.closed or self.send_closed:
                    break
                n = min(window, _MAX_PAYLOAD, end - sent)
                self.send_window = window - n
                frame = _HEADER.pack(0, TYPE_DATA, 0, self.stream_id, n) + view[sent : sent + n]
                async with conn._write_lock:
                    cipher = transport.writer.noise_state.noise_protocol.cipher_state_encrypt
                    sealed: bytes = cipher.encrypt_with_ad(None, frame)
                    await transport.raw_write(len(sealed).to_bytes(2, "big") + sealed)
                sent += n
        if timer.cancelled_caught:
            await give_up(transport.writer)
        return sent

    async def _wait_for_window(self) -> None:
        waiter = self.__dict__.get(_WAITER)
        if waiter is None:
            waiter = self.__dict__[_WAITER] = trio.Event()
        with trio.move_on_after(WINDOW_WAIT) as timer:
            await waiter.wait()
        if timer.cancelled_caught:
            raise MuxedStreamError(f"Timed out waiting for window update after {WINDOW_WAIT:g} seconds.")
