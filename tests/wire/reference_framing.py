"""The previous frame decoder, kept as a reference model for ``FrameDecoder`` (tests only).

It buffered everything in one ``bytearray`` and copied payloads out of it; the current decoder
must behave exactly like it: the same payloads, errors, ``buffered_bytes`` and boundaries.
"""

from __future__ import annotations

from typing import NoReturn

from p2p_orchestrator.errors import ProtocolError

FRAME_HEADER_BYTES = 4


class ReferenceFrameDecoder:
    """The buffer-and-compact decoder the project used before: an oracle for the current one."""

    def __init__(self, max_frame_bytes: int) -> None:
        self._max = max_frame_bytes
        self._buf = bytearray()
        self._start = 0  # index of the first byte not yet returned by next_frame()
        self._scan = 0  # index of the next header whose length has not been checked yet
        self._error: ProtocolError | None = None

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
