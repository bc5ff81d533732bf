"""A minimal length-prefixed CBOR framing for the process-to-process baselines.

The same layout as the project's wire framing (a 4-byte big-endian length, then the CBOR
payload) written independently here, so a baseline measures the floor of the transport, not
the project's own code.
"""

from __future__ import annotations

from typing import Any

import cbor2
import trio

__all__ = ["FrameReader", "encode"]

_HEADER = 4
_READ_SIZE = 65536


def encode(message: Any) -> bytes:
    """``message`` as one frame: length prefix and CBOR payload."""
    payload = cbor2.dumps(message)
    return len(payload).to_bytes(_HEADER, "big") + payload


class FrameReader:
    """Reads whole frames from a trio byte stream."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def next(self) -> Any | None:
        """The next decoded message, or ``None`` on a clean end of stream between frames."""
        while True:
            if len(self._buffer) >= _HEADER:
                size = int.from_bytes(self._buffer[:_HEADER], "big")
                if len(self._buffer) >= _HEADER + size:
                    payload = bytes(self._buffer[_HEADER : _HEADER + size])
                    del self._buffer[: _HEADER + size]
                    return cbor2.loads(payload)
            data = await self._stream.receive_some(_READ_SIZE)
            if not data:
                if self._buffer:
                    raise EOFError(f"stream ended inside a frame ({len(self._buffer)} bytes pending)")
                return None
            self._buffer += data
