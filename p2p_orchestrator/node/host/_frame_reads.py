"""Read each Noise frame of py-libp2p 0.8.1 with one wake-up, not one per TCP segment.

The cost.  A Noise frame (up to 64 KiB) is read by ``read_exactly``: one ``recv`` for what has
arrived, then, while bytes are missing, wait for the socket to be readable and ``recv`` again.
On a link slower than the CPU -- 20 Mbit/s, where segments of 1.4 KiB arrive ~0.6 ms apart --
every segment wakes the task: epoll, trio's scheduler, a ``recv``, Python's loop around them.
Measured on the swarm testbed (16 MiB at 20 Mbit/s, the project's 2-core machine): receiving
cost a node ~1.3 s of CPU against ~0.5 s for sending the same bytes; with sixteen nodes on two
cores that CPU, not the links, set the pace.

The fix.  Once a frame's length is known, its bytes are due: the peer sends them or the
connection ends.  So before each wait for the rest of a frame, the socket's ``SO_RCVLOWAT`` is
set to exactly what is still missing, and epoll reports the socket readable only when that much
has arrived -- or at end of file or an error, which epoll reports whatever the low-water mark.
A nonblocking ``recv`` still returns whatever is there, so nothing else changes; the mark goes
back to 1 after the frame.  Only reads of a known, due length use it (``read_exactly`` of
the Noise message reader, from :data:`MIN_MARKED` bytes), never a read of "up to n bytes",
which could wait for bytes that never come.  A frame that arrived whole is returned as read,
without a copy.

:func:`install` patches the module once per process (idempotent); the node installs it.
Where the socket option cannot be set (not TCP, not Linux), reads go on as before.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from libp2p.io import msgio
from libp2p.io.exceptions import IncompleteReadError

__all__ = ["MAX_LOWAT", "MIN_MARKED", "install"]

MAX_LOWAT = 65536
"""The largest low-water mark set (a Noise frame is at most 65535 bytes)."""

MIN_MARKED = 1024
"""Shorter reads (the 2-byte length in front of each Noise frame, small frames) nearly always
arrive in one segment: a mark would cost two system calls for nothing."""

_MARK = "_p2p_orchestrator_frame_reads"


def incomplete_read(expected: int, received: int) -> IncompleteReadError:
    """py-libp2p's error for a connection that closed ``received`` bytes into an exact read of ``expected``."""
    return IncompleteReadError(
        f"Connection closed during read operation: expected {expected} bytes but received {received} bytes",
        expected_bytes=expected,
        received_bytes=received,
    )


@contextlib.contextmanager
def low_water_mark(sock: Any, due: int) -> Iterator[None]:
    """Wake the socket's reader only once ``due`` bytes (at most :data:`MAX_LOWAT`) have arrived, then 1 again."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, min(due, MAX_LOWAT))
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # closed meanwhile: nothing to restore
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)


def _socket_of(reader: Any) -> Any:
    """The trio socket under a py-libp2p raw TCP connection, or ``None``."""
    stream = getattr(getattr(reader, "stream", None), "stream", None)
    return getattr(stream, "socket", None)


def install() -> None:
    """Make framed reads wake once per frame (see the module docstring)."""
    original: Callable[..., Awaitable[bytes]] = getattr(msgio, "read_exactly")  # noqa: B009
    if getattr(original, _MARK, False):
        return

    async def read_exactly(reader: Any, n: int, *args: Any, **kwargs: Any) -> bytes:
        sock = _socket_of(reader) if n >= MIN_MARKED else None
        if sock is None:
            return await original(reader, n, *args, **kwargs)
        with low_water_mark(sock, n):
            data: bytes = await reader.read(n)
            if len(data) == n:
                return data  # the usual case: the whole frame in one read, kept as is
            buffer = bytearray(data)
            while data and len(buffer) < n:
                missing = n - len(buffer)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, min(missing, MAX_LOWAT))
                data = await reader.read(missing)
                buffer += data
            if len(buffer) < n:
                raise incomplete_read(n, len(buffer))
        return bytes(buffer)

    setattr(read_exactly, _MARK, True)
    setattr(msgio, "read_exactly", read_exactly)  # noqa: B010  (the name msgio calls at run time)
