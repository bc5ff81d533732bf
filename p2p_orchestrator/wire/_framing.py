"""Length-prefixed framing: a 4-byte big-endian length, then exactly that many payload bytes.

::

    0                   1                   2                   3
    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
   |                 payload length N (uint32, big-endian)         |
   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
   |                 N bytes of CBOR payload ...                   |
   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

:class:`FrameDecoder` is sans-IO: the caller feeds it whatever bytes arrived, in pieces of any
size, and pulls complete payloads out.  It never reads or writes anything itself.
"""

from __future__ import annotations

from collections import deque
from typing import NoReturn, TypeAlias

from ..errors import ProtocolError
from ._constants import DEFAULT_MAX_FRAME_BYTES, FRAME_HEADER_BYTES, MAX_FRAME_LIMIT

__all__ = ["FrameDecoder", "Piece", "encode_frame"]

Piece: TypeAlias = bytes | bytearray | memoryview
"""A run of a payload's bytes as it arrived (see :meth:`FrameDecoder.next_frame_pieces`)."""

_SMALL_PART = 16 * 1024
"""Pieces of a payload smaller than this are copied together at once rather than kept apart."""


def _check_cap(max_frame_bytes: int) -> int:
    if not isinstance(max_frame_bytes, int) or not 1 <= max_frame_bytes <= MAX_FRAME_LIMIT:
        raise ValueError(
            f"max_frame_bytes must be an integer in 1..{MAX_FRAME_LIMIT}, got {max_frame_bytes!r}"
        )
    return max_frame_bytes


def encode_frame(payload: bytes, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> bytes:
    """Return ``payload`` with its 4-byte length prefix, ready to write to a stream.

    Raises :class:`ProtocolError` (``empty_frame`` or ``frame_too_large``) for a payload the
    receiving side would refuse, so the mistake is reported where it was made.
    """
    _check_cap(max_frame_bytes)
    size = len(payload)
    if size == 0:
        raise ProtocolError("refusing to send an empty frame", code="empty_frame")
    if size > max_frame_bytes:
        raise ProtocolError(
            f"payload of {size} bytes exceeds the frame limit of {max_frame_bytes} bytes",
            code="frame_too_large",
        )
    return size.to_bytes(FRAME_HEADER_BYTES, "big") + payload


class FrameDecoder:
    """Turn a byte stream, fed in arbitrary pieces, into frame payloads.

    Typical use by an adapter::

        decoder = FrameDecoder()
        while (payload := decoder.next_frame()) is None:
            data = await stream.receive_some(max(decoder.bytes_needed, 65536))
            if not data:  # EOF
                if not decoder.at_frame_boundary:
                    raise ProtocolError("...", code="truncated_frame")
                break
            decoder.feed(data)

    Guarantees:

    * Each frame's declared length is checked as soon as its 4 header bytes have arrived, in the
      :meth:`feed` call that completed the header, so an oversized or empty frame is refused before
      the decoder waits for, or keeps, any of its payload.
    * A partial frame never occupies more than ``4 + max_frame_bytes`` bytes (plus the rest of
      the pieces its bytes came in).  Complete frames stay buffered until :meth:`next_frame`
      takes them, so a caller that feeds only when :meth:`next_frame` returns ``None`` (the loop
      above) keeps memory bounded by one frame plus one read.
    * Work is linear in the bytes fed, whatever the pieces.  A frame is assembled from its
      pieces once, when its last byte arrives; a payload fed as one whole ``bytes`` piece (e.g.
      a read of exactly :attr:`bytes_needed`) is returned as is, without a copy.

    After a :class:`ProtocolError` the decoder is broken: it drops its buffer and every later
    call raises the same error again.
    """

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self._max = _check_cap(max_frame_bytes)
        self._ready: deque[tuple[list[Piece], int]] = deque()  # complete payloads not yet taken
        self._ready_bytes = 0  # their bytes, headers included
        self._header = bytearray()  # a partial header (fewer than 4 bytes)
        self._parts: list[Piece] = []  # the frame in progress
        self._length = 0  # its declared payload length (0: no frame in progress)
        self._missing = 0  # its payload bytes still to come
        self._error: ProtocolError | None = None
        self.bytes_copied = 0
        """Payload bytes copied so far (at most twice each; for tests of the copying claims)."""

    @property
    def max_frame_bytes(self) -> int:
        """The cap on a frame's payload size this decoder enforces."""
        return self._max

    @property
    def buffered_bytes(self) -> int:
        """Bytes received but not yet returned as part of a frame."""
        partial = FRAME_HEADER_BYTES + self._length - self._missing if self._length else len(self._header)
        return self._ready_bytes + partial

    @property
    def at_frame_boundary(self) -> bool:
        """True when every buffered byte belongs to a complete frame (e.g. nothing is buffered).

        An EOF is clean only at a frame boundary; EOF anywhere else means a truncated frame.
        """
        return not self._length and not self._header

    @property
    def bytes_needed(self) -> int:
        """Bytes that must still arrive before :meth:`next_frame` can return a payload.

        0 when a complete frame is waiting; otherwise what the frame in progress lacks (or its
        header, while the length is not known yet).  An adapter may read exactly this much to
        get a large payload in one piece.
        """
        if self._ready:
            return 0
        return self._missing if self._length else FRAME_HEADER_BYTES - len(self._header)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add received bytes (any amount, including none) and check any newly complete headers.

        ``bytes``, and a ``memoryview`` of a ``bytes``, are kept as they are (nothing can change
        them); anything else is copied first (the caller may reuse a mutable buffer).
        Raises :class:`ProtocolError` with code ``frame_too_large`` or ``empty_frame``.
        """
        self._raise_if_broken()
        if type(data) is not bytes and not (type(data) is memoryview and type(data.obj) is bytes):
            data = bytes(data)  # a snapshot
        pos, end = 0, len(data)
        while pos < end:
            if not self._length:
                if not self._header and end - pos >= FRAME_HEADER_BYTES:
                    self._start_frame(int.from_bytes(data[pos : pos + FRAME_HEADER_BYTES], "big"))
                    pos += FRAME_HEADER_BYTES
                    continue
                take = min(FRAME_HEADER_BYTES - len(self._header), end - pos)
                self._header += data[pos : pos + take]
                pos += take
                if len(self._header) == FRAME_HEADER_BYTES:
                    self._start_frame(int.from_bytes(self._header, "big"))
                    self._header.clear()
                continue
            take = min(self._missing, end - pos)
            self._add_part(data, pos, take, end)
            pos += take
            self._missing -= take
            if not self._missing:
                self._finish_frame()

    def next_frame(self) -> bytes | None:
        """Return the next complete payload, or ``None`` if more bytes are needed."""
        pieces = self.next_frame_pieces()
        if pieces is None:
            return None
        if len(pieces) == 1 and type(pieces[0]) is bytes:
            return pieces[0]
        payload = b"".join(pieces)
        self.bytes_copied += len(payload)
        return payload

    def next_frame_pieces(self) -> list[Piece] | None:
        """The next complete payload as the pieces it arrived in, or ``None`` if more bytes are needed.

        ``b"".join(pieces)`` is the payload; a caller that needs only part of it (a chunk's data)
        can copy just that part.  The pieces are the caller's, for reading only.
        """
        self._raise_if_broken()
        if not self._ready:
            return None
        pieces, length = self._ready.popleft()
        self._ready_bytes -= FRAME_HEADER_BYTES + length
        return pieces

    def _start_frame(self, length: int) -> None:
        if length == 0:
            self._break(ProtocolError("received an empty (zero-length) frame", code="empty_frame"))
        if length > self._max:
            self._break(
                ProtocolError(
                    f"peer declared a frame of {length} bytes; the limit is {self._max} bytes",
                    code="frame_too_large",
                )
            )
        self._length = self._missing = length

    def _add_part(self, data: bytes | memoryview, pos: int, take: int, end: int) -> None:
        parts = self._parts
        if take == end:  # the whole piece (pos is 0)
            parts.append(data)
        elif not parts and take == self._missing:  # the whole payload, within the piece
            parts.append(data[pos : pos + take])  # a copy of a bytes, a view of a view
            self.bytes_copied += take if type(data) is bytes else 0
        elif take >= _SMALL_PART:
            parts.append(memoryview(data)[pos : pos + take])
        else:
            # Small pieces are gathered in one bytearray, so that a frame fed a byte at a time
            # costs a byte per byte, not an object per byte.
            last = parts[-1] if parts else None
            if isinstance(last, bytearray):
                last += data[pos : pos + take]
            else:
                parts.append(bytearray(data[pos : pos + take]))
            self.bytes_copied += take

    def _finish_frame(self) -> None:
        self._ready.append((self._parts, self._length))
        self._ready_bytes += FRAME_HEADER_BYTES + self._length
        self._parts = []
        self._length = 0

    def _break(self, error: ProtocolError) -> NoReturn:
        self._error = error
        self._ready.clear()
        self._ready_bytes = 0
        self._header.clear()
        self._parts.clear()
        self._length = self._missing = 0
        raise error

    def _raise_if_broken(self) -> None:
        if self._error is not None:
            raise ProtocolError(self._error.message, code=self._error.code)
