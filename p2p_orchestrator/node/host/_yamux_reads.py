"""Read a py-libp2p 0.8.1 Yamux stream in large pieces: one window update per piece, not per 64 KiB.

The cost.  Every ``read()`` of a Yamux stream sends the peer a window update -- a 12-byte Yamux
frame in its own Noise message: an encryption and a ``send`` here, a ``recv``, a decryption and
a Yamux header there -- whatever it returned.  A reader that keeps up with its connection wakes
for each Yamux data frame (at most 64 KiB), so a 1 MiB transfer chunk cost sixteen reads and
sixteen updates.  Measured on the transfer benchmark: those updates took ~15% of the receiving
node's event loop and most of the sending node's reading, on top of the reads themselves.

The fix.  When the reader knows that ``n`` bytes are due (the rest of a frame whose length it
has read; the peer sends each frame whole or ends the stream), :func:`gather` waits until the
stream's buffer holds them, and the read that follows takes them in one piece.  It stops waiting
early once the peer has used half of its receive window (the update of the read that follows
restores it, as go-yamux's own hysteresis does), so a sender never stalls on a window held shut,
and at once when the stream or its connection ends (the read then reports it).  Each wake-up
costs a check of the buffer's length, not a read and an update.

The window.  py-libp2p starts every stream's receive window at 256 KiB and grows it only when
updates follow each other within four round trips -- never on loopback or a LAN, where its ping
measures a fraction of a millisecond -- so a 1 MiB frame took four reads and four updates, and
the sender waited for each.  :func:`gather` raises the stream's target window to twice the
frame it waits for (at most :data:`MAX_WINDOW`), so that a whole frame fits, and the update of
the read that takes it grants the next one.  Only a reader that waits for a frame it was told is
coming does so (a transfer's, for a peer with a role); the guard (``_yamux_guard``) still
bounds every stream by its window and every connection by its budget.

The reads.  :func:`take` is the read of a py-libp2p stream, without its copy: the payloads the
stream's buffer holds (see ``_yamux_guard``), handed over as they arrived, and the same window
update -- except after a small read (under a quarter of the window) while the peer still has
more than half of its window: py-libp2p would send an update for it (one more Noise message each
way per transfer frame, for the few bytes read after it); it is left for the next update to
grant, as go-yamux's hysteresis does.  It takes only from a stream that is open and holds
bytes; anything else -- an empty buffer to wait on, the end of the stream, a reset -- goes
through the library's ``read``.

It uses the muxer's internals (``stream_buffers``, ``stream_events``, the window counters), as
py-libp2p's own ``read`` does; for any other stream it returns at once and reads go on as before.
"""

from __future__ import annotations

from typing import Any

import trio
from libp2p.network.stream.net_stream import StreamState

__all__ = ["MAX_WINDOW", "gather", "take"]

MAX_WINDOW = 8 * 1024 * 1024
"""The largest receive window :func:`gather` asks for (twice the largest transfer frame)."""

_NOT_READABLE = (StreamState.RESET, StreamState.ERROR)


def _yamux_parts(raw: object) -> tuple[Any, Any] | None:
    """The Yamux stream and connection under a libp2p ``NetStream``, or ``None``."""
    stream = getattr(raw, "muxed_stream", None)
    conn = getattr(stream, "conn", None)
    if not isinstance(getattr(conn, "stream_buffers", None), dict) or not isinstance(
        getattr(conn, "stream_events", None), dict
    ):
        return None
    needed = ("stream_id", "recv_window", "target_recv_window", "recv_closed", "reset_received", "closed")
    if not all(hasattr(stream, name) for name in needed) or not hasattr(conn, "event_shutting_down"):
        return None
    return stream, conn


async def gather(raw: object, n: int) -> None:
    """Wait until ``n`` bytes of ``raw`` can be read in one piece, or waiting would not help.

    Call it only for bytes that are due.  Returns early when the peer's window is half used, when
    the stream or its connection ends, and at once for a stream that is not a py-libp2p Yamux
    stream.  Cancellable like any wait; it never raises otherwise.
    """
    parts = _yamux_parts(raw)
    if parts is None:
        return
    stream, conn = parts
    # a window that holds the whole frame, granted by the update of the next read
    stream.target_recv_window = max(stream.target_recv_window, min(2 * n, MAX_WINDOW))
    sid = stream.stream_id
    buffers: dict[int, bytearray] = conn.stream_buffers
    events: dict[int, trio.Event] = conn.stream_events
    while True:
        buffer = buffers.get(sid)
        if (
            buffer is None
            or len(buffer) >= n
            or stream.recv_window <= stream.target_recv_window // 2
            or stream.recv_closed
            or stream.reset_received
            or stream.closed
            or conn.event_shutting_down.is_set()
        ):
            return
        event = events.get(sid)
        if event is None:
            return
        if event.is_set():
            events[sid] = trio.Event()  # consumed, as py-libp2p's read does; then look again
            continue
        await event.wait()


async def take(raw: object, max_bytes: int) -> list[bytes | memoryview] | None:
    """Up to ``max_bytes`` bytes ``raw`` holds, as the pieces they arrived in; ``None``: use ``read``.

    ``None`` unless ``raw`` is an open py-libp2p Yamux stream whose buffer holds bytes (an empty
    buffer, the end of the stream or a reset are for the library's ``read`` to wait on or report).
    Sends the same window update as a read.
    """
    parts = _yamux_parts(raw)
    if parts is None or getattr(raw, "_state", None) in _NOT_READABLE:
        return None
    stream, conn = parts
    sid = stream.stream_id
    buffer = conn.stream_buffers.get(sid)
    if (
        not buffer
        or not hasattr(buffer, "take")
        or stream.closed
        or stream.recv_closed
        or stream.reset_received
        or conn.event_shutting_down.is_set()
        or conn.streams.get(sid) is not stream
    ):
        return None
    pieces: list[bytes | memoryview] = buffer.take(max_bytes)
    taken = sum(len(piece) for piece in pieces)
    half = stream.target_recv_window // 2
    if taken < half // 2 and stream.recv_window > half and hasattr(stream, "_pending_recv_release"):
        # A small read while the peer still has over half its window: credited with the next
        # update (the library computes it from the window's deficit), as go-yamux would.
        stream._pending_recv_release += taken
        return pieces
    await stream._auto_tune_and_send_window_update(bytes_read=taken)
    return pieces
