"""Read py-libp2p 0.8.1's Noise transport messages ahead, and hand Yamux its bytes without copies.

The cost.  Each Yamux frame (a 12-byte header, then up to 64 KiB) crosses four layers on its way
in, and each paid for it in calls, wake-ups and copies:

* the Noise message reader read every message with two exact reads of the TCP connection (its
  2-byte length, then its body): two passes through the connection's lock and trio's socket
  machinery (a scheduler checkpoint each), per message;
* a 64 KiB Yamux frame does not fit one Noise message (at most 65519 bytes of plaintext), so a
  sender like py-libp2p's splits it in two: twice that, per frame;
* ``SecureSession.read`` kept the rest of a message in a ``BytesIO`` and copied every byte three
  or four times on the way (``tobytes``, ``bytearray``, ``extend``, ``bytes``);
* Yamux's ``read_exactly`` copied the result twice more (into a ``bytearray``, back to ``bytes``).

Measured on the ``transfer_cpu_per_mib`` benchmark, this read path was about half of a
receiving node's CPU.

The fix, installed once per process by :func:`install` (the node installs it):

* :class:`_Inbox`, a Noise transport reader's read-ahead: one read of the connection takes
  whatever has arrived, up to :data:`READ_AHEAD` bytes -- several messages when the sender is
  ahead -- and each message is decrypted straight from that buffer (a ``memoryview``: no copy of
  the ciphertext).  Only a message cut by the end of a read is gathered in a buffer of its own.
  While the rest of a message is due (its length is known), the socket's ``SO_RCVLOWAT`` is set
  to what is missing, as :mod:`._frame_reads` does, so a slow link still wakes the reader once
  per message, not once per TCP segment.  Only the transport reader does this: the handshake's
  reads stay exact, so no byte after the handshake is taken by the wrong reader;
* ``SecureSession.read`` keeps the rest of a message as a ``memoryview`` of it: a read that a
  message holds costs one copy of what is read, or none (a whole message);
* a Yamux connection reads its headers and DATA payloads with :func:`take_exactly`: a
  ``memoryview`` of the decrypted message when one message holds them (the stream's buffer keeps
  that view: see :mod:`._yamux_guard`), and one join otherwise.

What a reader sees is unchanged: the same bytes, the same exceptions at the end of the
connection (``IncompleteReadError`` with the bytes expected and received, a failed
authentication as ``NoiseInvalidMessage``).  Anything that is not a TCP connection under Noise
goes the library's way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from cryptography.exceptions import InvalidTag
from libp2p.io.exceptions import ConnectionClosedError
from libp2p.security.noise.io import NoiseTransportReadWriter
from libp2p.security.secure_session import SecureSession
from libp2p.stream_muxer.yamux import yamux as yamux_module
from noise.exceptions import NoiseInvalidMessage  # type: ignore[import-untyped]

from p2p_orchestrator.node.host._frame_reads import MIN_MARKED, incomplete_read, low_water_mark

__all__ = ["READ_AHEAD", "install", "route_yamux_reads", "take_exact", "take_exactly", "take_ready"]

READ_AHEAD = 256 * 1024
"""Bytes one read of the connection may take at most (four Noise messages of the largest size)."""

_MARK = "_p2p_orchestrator_secure_reads"
_INBOX = "_p2p_orchestrator_inbox"
_REST = "_p2p_orchestrator_rest"
_ROUTED = "_p2p_orchestrator_routed_reads"

Bytes = bytes | memoryview


def _socket_of(raw: Any) -> Any:
    """The trio socket under a py-libp2p raw TCP connection, or ``None``."""
    stream = getattr(getattr(raw, "stream", None), "stream", None)
    return getattr(stream, "socket", None)


class _Inbox:
    """The read-ahead of one Noise transport reader: ciphertext received, not yet decrypted."""

    __slots__ = ("block", "pos", "raw", "sock")

    def __init__(self, raw: Any, sock: Any) -> None:
        self.raw = raw
        self.sock = sock
        self.block: bytes = b""
        self.pos = 0

    def ready(self) -> memoryview | None:
        """The next Noise message's body if it is here whole (ciphertext), else ``None``."""
        block, pos = self.block, self.pos
        if len(block) - pos >= 2:
            end = pos + 2 + ((block[pos] << 8) | block[pos + 1])
            if end <= len(block):
                self.pos = end
                return memoryview(block)[pos + 2 : end]
        return None

    async def message(self) -> Bytes:
        """The next Noise message's body (ciphertext), or ``IncompleteReadError`` at the end."""
        while True:
            ready = self.ready()
            if ready is not None:
                return ready
            block, pos = self.block, self.pos
            have = len(block) - pos
            if have >= 2:
                total = 2 + ((block[pos] << 8) | block[pos + 1])
                return await self._gather(memoryview(block)[pos:], total)
            data = await self._receive(0)  # the length is not known: nothing is due yet
            if not data:
                raise incomplete_read(2, have)
            self.block, self.pos = (block[pos:] + data if have else data), 0

    async def _gather(self, head: memoryview, total: int) -> memoryview:
        """The rest of a message cut by the end of a read: gathered in a buffer of its own."""
        pending = bytearray(head)
        self.block, self.pos = b"", 0
        while True:
            missing = total - len(pending)
            data = await self._receive(missing)
            if not data:
                raise incomplete_read(total - 2, len(pending) - 2)
            if len(data) >= missing:
                pending += memoryview(data)[:missing]
                self.block, self.pos = data, missing
                return memoryview(pending)[2:]
            pending += data

    async def _receive(self, due: int) -> bytes:
        """Whatever has arrived (up to :data:`READ_AHEAD`); with ``due`` bytes owed, once they have."""
        sock = self.sock
        if due < MIN_MARKED:
            data: bytes = await self.raw.read(READ_AHEAD)
            return data
        with low_water_mark(sock, due):
            data = await self.raw.read(READ_AHEAD)
        return data


def _decrypt(reader: Any, ciphertext: Bytes) -> bytes:
    """``NoiseConnection.decrypt``, from any buffer (the library's insists on ``bytes``)."""
    try:
        plaintext: bytes = reader.noise_state.noise_protocol.cipher_state_decrypt.decrypt_with_ad(
            None, ciphertext
        )
    except InvalidTag:
        raise NoiseInvalidMessage("Failed authentication of message") from None
    return plaintext


async def _take(session: Any, n: int) -> Bytes:
    """Exactly ``n`` bytes of ``session`` (fewer only at the end of the connection), possibly a view."""
    rest: memoryview | None = session.__dict__.get(_REST)
    parts: list[Bytes] = []
    got = 0
    if rest is not None:
        if len(rest) > n:
            session.__dict__[_REST] = rest[n:]
            return rest[:n]
        session.__dict__[_REST] = None
        if len(rest) == n:
            return rest
        parts.append(rest)
        got = len(rest)
    while got < n:
        message = await session.conn.read_msg()
        if not message:  # the library's reader says the connection closed
            if parts:
                break
            raise ConnectionClosedError("Connection closed")
        need = n - got
        if len(message) > need:
            view = memoryview(message)
            session.__dict__[_REST] = view[need:]
            message = view[:need]
        parts.append(message)
        got += len(message)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def take_ready(session: Any, n: int) -> Bytes | None:
    """``n`` bytes of ``session`` if they can be had without waiting, else ``None`` (read them then).

    They can when the rest of the last message holds them, or with the next message, read ahead
    whole (it is decrypted here; what is not taken stays for the next read).  Fewer than ``n``
    only where :func:`take_exactly` would fail: the connection said it closed.
    """
    state = session.__dict__
    rest: memoryview | None = state.get(_REST)
    have = len(rest) if rest is not None else 0
    if have >= n:
        state[_REST] = rest[n:] if have > n else None  # type: ignore[index]
        return rest[:n] if have > n else rest  # type: ignore[index]
    inbox: _Inbox | None = getattr(getattr(session, "conn", None), "__dict__", {}).get(_INBOX)
    body = inbox.ready() if inbox is not None else None
    if body is None:
        return None
    message = _decrypt(session.conn, body)
    if not message:  # the library's reader says the connection closed
        state[_REST] = None
        return rest if rest is not None else b""
    need = n - have
    if len(message) < need:  # not enough yet: keep it all for the read that waits
        state[_REST] = memoryview(bytes(rest) + message if rest is not None else message)
        return None
    view = memoryview(message)
    state[_REST] = view[need:] if len(message) > need else None
    return view[:need] if rest is None else b"".join((rest, view[:need]))


async def take_exactly(reader: Any, n: int, *args: Any, **kwargs: Any) -> Bytes:
    """Yamux's ``read_exactly``: the same bytes and errors, as a view of a message when one holds them.

    On a session given to :func:`route_yamux_reads`, the read goes to the reader it was given.
    """
    if not isinstance(reader, SecureSession) or not n:
        return await _ORIGINAL_READ_EXACTLY(reader, n, *args, **kwargs)
    routed: Callable[[int], Awaitable[Bytes]] | None = reader.__dict__.get(_ROUTED)
    if routed is not None:
        return await routed(n)
    return await take_exact(reader, n)


async def take_exact(session: SecureSession, n: int) -> Bytes:
    """Exactly ``n`` bytes of ``session``, possibly a view; ``IncompleteReadError`` at the end of it."""
    data = await _take(session, n)
    if len(data) < n:
        raise incomplete_read(n, len(data))
    return data


def route_yamux_reads(session: SecureSession, reader: Callable[[int], Awaitable[Bytes]]) -> None:
    """Send py-libp2p Yamux's own exact reads of ``session`` to ``reader`` from now on.

    Yamux's receive loop reads each frame header with ``read_exactly``; the guarded muxer reads
    its DATA bodies itself (:func:`take_ready`, :func:`take_exact`), so on its session the reads
    that reach ``reader`` are the headers (see ``_yamux_incoming``).
    """
    session.__dict__[_ROUTED] = reader


_ORIGINAL_READ_EXACTLY: Callable[..., Awaitable[bytes]] = getattr(yamux_module, "read_exactly")  # noqa: B009


def install() -> None:
    """Install the read-ahead and the copy-free reads (see the module docstring); idempotent."""
    if getattr(NoiseTransportReadWriter.read_msg, _MARK, False):
        return
    original_read_msg: Callable[..., Awaitable[bytes]] = NoiseTransportReadWriter.read_msg

    async def read_msg(self: Any, prefix_encoded: bool = False) -> bytes:
        inbox: _Inbox | None = self.__dict__.get(_INBOX)
        if inbox is None:
            raw = self.read_writer.read_write_closer
            sock = _socket_of(raw)
            if prefix_encoded or sock is None:
                return await original_read_msg(self, prefix_encoded)
            inbox = self.__dict__[_INBOX] = _Inbox(raw, sock)
        elif prefix_encoded:
            raise ValueError("a Noise transport message has no prefix")
        return _decrypt(self, await inbox.message())

    async def read(self: Any, n: int | None = None) -> bytes:
        if n == 0:
            return b""
        if n is None:
            rest: memoryview | None = self.__dict__.get(_REST)
            if rest is not None:
                self.__dict__[_REST] = None
                return bytes(rest)
            message: bytes = await self.conn.read_msg()
            if message == b"":
                raise ConnectionClosedError("Connection closed")
            return message
        data = await _take(self, n)
        return data if type(data) is bytes else bytes(data)

    setattr(read_msg, _MARK, True)
    read_msg.__doc__ = original_read_msg.__doc__
    read.__doc__ = SecureSession.read.__doc__
    NoiseTransportReadWriter.read_msg = read_msg  # type: ignore[method-assign]
    SecureSession.read = read  # type: ignore[method-assign]
    setattr(yamux_module, "read_exactly", take_exactly)  # noqa: B010  (the name Yamux calls at run time)
