"""A guarded Yamux connection's plain DATA frames, delivered on the way to the library's next header.

The cost.  py-libp2p 0.8.1's Yamux receive loop (``Yamux.handle_incoming``) pays for every
frame with work that a plain DATA frame -- a payload for a stream that is open, no flags -- does
not need: five debug lines formatted whether they are logged or not (f-strings of the header,
the peer, the lengths), a table of type names and a list of flag names built to format one of
them, and the connection's ``streams_lock`` taken and released (a trio checkpoint: a trip through
the scheduler).  That is per 64 KiB of a transfer, and per small message of a swarm (a ``have``,
a ``want``), where such messages are most of the frames.

The fix.  The loop reads each header with ``read_exactly``, which a guarded connection answers
(``_secure_reads.route_yamux_reads``) with :func:`next_header`: it reads the header and, while it
is a plain DATA frame, delivers the payload itself -- into the stream's buffer (which the guard
admits or refuses, ``_yamux_guard``), the stream's receive window charged, its reader woken, the
stream finalized if it was closed -- exactly as the library's loop does, then reads the next
header.  Every other frame goes back to the library's loop, which handles it as before: a new
stream (SYN) or its ACK, FIN or RST, a window update, a ping, GO_AWAY, a frame larger than the
largest window (the library closes the connection), a frame that arrives while the connection
shuts down.  A DATA frame that arrives while another task holds ``streams_lock`` waits for the
lock, as the library's loop would; otherwise it is delivered without taking it (the delivery
does not await: no other task can run in the middle of it).

The reads, the bytes and the errors are the library's: a connection that ends inside a frame
raises the same ``IncompleteReadError`` from the same read, and a body that does not arrive
within the library's DATA read deadline raises ``trio.TooSlowError`` as the library's does.
"""

from __future__ import annotations

import struct
from typing import Any

from libp2p.io.exceptions import IncompleteReadError
from libp2p.stream_muxer.yamux.yamux import HEADER_SIZE, MAX_WINDOW_SIZE, TYPE_DATA, YAMUX_HEADER_FORMAT

from p2p_orchestrator.node.host._secure_reads import Bytes, take_exact

__all__ = ["next_header"]

_HEADER = struct.Struct(YAMUX_HEADER_FORMAT)


async def next_header(muxer: Any, n: int) -> Bytes:
    """The next frame header of ``muxer`` that its library loop must handle; see the module docstring.

    ``muxer`` is a py-libp2p ``Yamux`` on a ``SecureSession`` whose DATA bodies it reads itself
    (``_read_data_body``); ``n`` is what the loop asked for (a header's 12 bytes).
    """
    session = muxer.secured_conn
    while True:
        header = await take_exact(session, n)
        if n != HEADER_SIZE:
            return header
        _version, kind, flags, stream_id, length = _HEADER.unpack(header)
        if (
            kind != TYPE_DATA
            or flags
            or not 0 < length <= MAX_WINDOW_SIZE
            or muxer.event_shutting_down.is_set()
        ):
            return header
        try:
            data = await muxer._read_data_body(length)
        except IncompleteReadError:
            # As the library does: the stream is closed, and the next read reports the connection's end.
            _close_stream(muxer, stream_id)
            continue
        if muxer.streams_lock.locked():  # another task is inside: wait for it, as the library would
            async with muxer.streams_lock:
                _deliver(muxer, stream_id, data)
        else:
            _deliver(muxer, stream_id, data)


def _deliver(muxer: Any, stream_id: int, data: Bytes) -> None:
    """What the library's loop does with a DATA frame without flags (a stream gone: dropped)."""
    stream = muxer.streams.get(stream_id)
    buffer = muxer.stream_buffers.get(stream_id)
    if stream is None or buffer is None:
        return
    buffer.extend(data)  # the guard admits it, or refuses it and resets the stream
    stream.recv_window = max(0, stream.recv_window - len(data))
    event = muxer.stream_events.get(stream_id)
    if event is not None:
        event.set()
    if stream.closed:
        muxer._finalize_stream_locked(stream, fully_closed=True)


def _close_stream(muxer: Any, stream_id: int) -> None:
    stream = muxer.streams.get(stream_id)
    if stream is None:
        return
    stream.recv_closed = stream.closed = True
    event = muxer.stream_events.get(stream_id)
    if event is not None:
        event.set()
