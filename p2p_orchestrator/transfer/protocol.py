"""The transfer protocol on a byte stream: frames out, checked messages in (sans-IO).

A transfer stream (libp2p protocol :data:`TRANSFER_PROTOCOL_ID`) uses the RPC protocol's framing
and CBOR profile unchanged -- a 4-byte big-endian length, then one strict-CBOR map -- with its
own messages (:mod:`.messages`) and a frame cap sized for chunks
(:data:`TRANSFER_FRAME_BYTES`: the largest chunk plus 64 KiB).

:class:`TransferChannel` owns no socket.  An adapter moves bytes, and hands messages to a
:class:`~p2p_orchestrator.transfer.TransferSender` or
:class:`~p2p_orchestrator.transfer.TransferReceiver`::

    channel = TransferChannel()
    while True:
        message = channel.next_message()
        if message is NEED_DATA:
            channel.receive_data(await stream.read(65536))  # b"" at EOF
            continue
        if message is CLOSED:
            break  # a clean EOF; never a success by itself (a reset reads as EOF too)
        ...  # feed the state machine, then write what it answers with channel.send(...)
"""

from __future__ import annotations

from typing import NoReturn

from ..errors import OrchestratorError, ProtocolError
from ..wire import CLOSED, NEED_DATA, FrameDecoder, Sentinel, decode_payload, encode_frame, encode_payload
from ._chunk_frames import chunk_from_pieces
from ._constants import DEFAULT_MAX_TRANSFER_BYTES, TRANSFER_FRAME_BYTES
from .messages import TransferMessage, message_from_wire

__all__ = ["TransferChannel", "encode_message"]


def encode_message(message: TransferMessage, max_frame_bytes: int = TRANSFER_FRAME_BYTES) -> bytes:
    """The frame (length prefix + CBOR) of ``message``, ready to write in one piece."""
    return encode_frame(encode_payload(message.to_wire()), max_frame_bytes)


class TransferChannel:
    """Frame and parse the messages of one transfer stream.

    * :meth:`send` returns the bytes of a message's frame (write them whole: a cut frame
      corrupts the stream).
    * :meth:`receive_data` takes whatever bytes arrived (``b""`` for EOF);
      :meth:`next_message` returns the next complete message, :data:`NEED_DATA`, or
      :data:`CLOSED` after an EOF at a frame boundary.
    * Memory: one partial frame (at most ``4 + max_frame_bytes``) plus what the last
      :meth:`receive_data` added, as long as the adapter drains :meth:`next_message` before
      feeding more.

    Any fault in the received bytes raises :class:`ProtocolError` (the RPC codec's codes:
    ``frame_too_large``, ``truncated_frame``, ``bad_cbor``, ``cbor_*``, ``bad_message``,
    ``data_after_eof``) or, for an offer's manifest, ``ServiceDistributionError``; the channel is
    then broken and raises the same error again on every later call.
    """

    def __init__(
        self,
        *,
        max_frame_bytes: int = TRANSFER_FRAME_BYTES,
        max_total_bytes: int = DEFAULT_MAX_TRANSFER_BYTES,
    ) -> None:
        self._decoder = FrameDecoder(max_frame_bytes)
        self._max_frame_bytes = max_frame_bytes
        self._max_total_bytes = max_total_bytes
        self._eof = False
        self._error: OrchestratorError | None = None

    @property
    def buffered_bytes(self) -> int:
        """Bytes received and not yet returned as a message."""
        return self._decoder.buffered_bytes

    @property
    def bytes_needed(self) -> int:
        """Bytes that must still arrive before the next message is complete (0: one is)."""
        return self._decoder.bytes_needed

    def send(self, message: TransferMessage) -> bytes:
        """The frame of ``message`` (``ProtocolError`` if it cannot be sent, e.g. too large)."""
        return encode_message(message, self._max_frame_bytes)

    def receive_data(self, data: bytes | memoryview) -> None:
        """Add received bytes; ``b""`` means the peer's EOF.  A ``memoryview`` of a ``bytes`` is kept
        as it is (see :meth:`FrameDecoder.feed`)."""
        self._raise_if_broken()
        if not data:
            self._eof = True  # repeating the EOF is harmless
            return
        if self._eof:
            self._break(ProtocolError("data passed after EOF", code="data_after_eof"))
        try:
            self._decoder.feed(data)
        except ProtocolError as exc:
            self._break(exc)

    def next_message(self) -> TransferMessage | Sentinel:
        """The next complete message, :data:`NEED_DATA`, or :data:`CLOSED` (clean EOF)."""
        self._raise_if_broken()
        try:
            pieces = self._decoder.next_frame_pieces()
            if pieces is None:
                if not self._eof:
                    return NEED_DATA
                if not self._decoder.at_frame_boundary or self._decoder.buffered_bytes:
                    raise ProtocolError("the stream ended inside a frame", code="truncated_frame")
                return CLOSED
            chunk = chunk_from_pieces(pieces)  # chunks: their data copied once, not twice
            if chunk is not None:
                return chunk
            payload = b"".join(pieces)
            return message_from_wire(decode_payload(payload), max_total_bytes=self._max_total_bytes)
        except OrchestratorError as exc:
            self._break(exc)

    def _break(self, error: OrchestratorError) -> NoReturn:
        self._error = error
        raise error

    def _raise_if_broken(self) -> None:
        if self._error is not None:
            raise type(self._error)(self._error.message, code=self._error.code)
