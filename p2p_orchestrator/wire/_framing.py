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

from typing import NoReturn

from ..errors import ProtocolError
from ._constants import DEFAULT_MAX_FRAME_BYTES, FRAME_HEADER_BYTES, MAX_FRAME_LIMIT

__all__ = ["FrameDecoder", "encode_frame"]


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
            data = await stream.receive_some(65536)
            if not data:  # EOF
                if not decoder.at_frame_boundary:
                    raise ProtocolError("...", code="truncated_frame")
                break
            decoder.feed(data)

    Guarantees:

    * Each frame's declared length is checked as soon as its 4 header bytes have arrived, in the
      :meth:`feed` call that completed the header, so an oversized or empty frame is refused before
      the decoder waits for, or keeps, any of its payload.
    * A partial frame never occupies more than ``4 + max_frame_bytes`` bytes.  Complete frames
      stay buffered until :meth:`next_frame` takes them, so a caller that feeds only when
      :meth:`next_frame` returns ``None`` (the loop above) keeps memory bounded by one frame plus
      one read.
    * Work is linear in the bytes fed: consumed bytes are dropped lazily (only once they make up
      at least half the buffer), so neither many tiny feeds nor one large frame arriving in
      64 KiB pieces causes quadratic copying.  Each payload is copied out exactly once.

    After a :class:`ProtocolError` the decoder is broken: it drops its buffer and every later
    call raises the same error again.
    """

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self._max = _check_cap(max_frame_bytes)
        self._buf = bytearray()
        self._start = 0  # index of the first byte not yet returned by next_frame()
        self._scan = 0  # index of the next header whose length has not been checked yet
        self._error: ProtocolError | None = None
        self.bytes_moved = 0
        """Bytes copied by buffer compaction so far (for tests of the linear-time claim)."""

    @property
    def max_frame_bytes(self) -> int:
        """The cap on a frame's payload size this decoder enforces."""
        return self._max

    @property
    def buffered_bytes(self) -> int:
        """Bytes received but not yet returned as part of a frame."""
        return len(self._buf) - self._start

    @property
    def at_frame_boundary(self) -> bool:
        """True when every buffered byte belongs to a complete frame (e.g. nothing is buffered).

        An EOF is clean only at a frame boundary; EOF anywhere else means a truncated frame.
        """
        return self._scan == len(self._buf)

    def feed(self, data: bytes) -> None:
        """Append received bytes (any amount, including none) and check any newly complete headers.

        Raises :class:`ProtocolError` with code ``frame_too_large`` or ``empty_frame``.
        """
        self._raise_if_broken()
        if not data:
            return
        if self._start and self._start >= len(self._buf) - self._start:
            # Drop consumed bytes only when they are at least half of the buffer: every byte
            # moved here was fed once and will be moved at most once per halving, so total
            # copying stays linear in the input.
            self.bytes_moved += len(self._buf) - self._start
            del self._buf[: self._start]
            self._scan -= self._start
            self._start = 0
        self._buf += data
        self._check_headers()

    def next_frame(self) -> bytes | None:
        """Return the next complete payload, or ``None`` if more bytes are needed."""
        self._raise_if_broken()
        buf, start = self._buf, self._start
        body = start + FRAME_HEADER_BYTES
        if body > len(buf):
            return None
        end = body + int.from_bytes(buf[start:body], "big")
        if end > len(buf):
            return None
        with memoryview(buf) as view, view[body:end] as part:
            payload = part.tobytes()
        if end == len(buf):
            buf.clear()
            self._start = self._scan = 0
        else:
            self._start = end
        return payload

    def _check_headers(self) -> None:
        buf, size = self._buf, len(self._buf)
        while self._scan + FRAME_HEADER_BYTES <= size:
            length = int.from_bytes(buf[self._scan : self._scan + FRAME_HEADER_BYTES], "big")
            if length == 0:
                self._break(ProtocolError("received an empty (zero-length) frame", code="empty_frame"))
            if length > self._max:
                self._break(
                    ProtocolError(
                        f"peer declared a frame of {length} bytes; the limit is {self._max} bytes",
                        code="frame_too_large",
                    )
                )
            self._scan += FRAME_HEADER_BYTES + length

    def _break(self, error: ProtocolError) -> NoReturn:
        self._error = error
        self._buf = bytearray()
        self._start = self._scan = 0
        raise error

    def _raise_if_broken(self) -> None:
        if self._error is not None:
            raise ProtocolError(self._error.message, code=self._error.code)
