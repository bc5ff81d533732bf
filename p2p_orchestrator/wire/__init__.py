"""Sans-IO wire codec for the orchestrator's RPC protocol.

Bytes in, events out; no sockets, no trio, no libp2p.  Three layers, each usable alone:

* framing -- :func:`encode_frame` and :class:`FrameDecoder` (4-byte big-endian length + payload);
* payloads -- :func:`encode_payload` and :func:`decode_payload` (a strict, tag-free CBOR profile);
* messages -- :class:`Request`, :class:`Response`, :class:`ErrorReply`, :class:`Cancel`,
  :class:`StreamItem`, :class:`StreamEnd`, :class:`Hello`, and :class:`RpcConnection`, the state
  machine that frames, checks and tracks them.

The same codec runs between the orchestrator and each service's child process (socketpair),
between nodes over libp2p streams (:data:`RPC_PROTOCOL_ID`), and between the CLI and the node
(Unix socket).  Every refusal is a :class:`~p2p_orchestrator.errors.ProtocolError` with a stable
``code``; ``docs/protocol.md`` is the full specification.
"""

from ._cbor import decode_payload, encode_payload
from ._constants import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_FRAME_BYTES,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_ITEMS,
    FRAME_HEADER_BYTES,
    MAX_REQUEST_ID,
    PROTOCOL_VERSION,
    RPC_PROTOCOL_ID,
)
from ._framing import FrameDecoder, Piece, encode_frame
from .connection import (
    CLOSED,
    NEED_DATA,
    ConnectionState,
    Event,
    OutstandingRequests,
    Role,
    RpcConnection,
    Sentinel,
)
from .messages import (
    Cancel,
    ErrorReply,
    Hello,
    Message,
    Request,
    Response,
    StreamEnd,
    StreamItem,
    message_from_wire,
)

__all__ = [
    "CLOSED",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_FRAME_BYTES",
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_MAX_ITEMS",
    "FRAME_HEADER_BYTES",
    "MAX_REQUEST_ID",
    "NEED_DATA",
    "PROTOCOL_VERSION",
    "RPC_PROTOCOL_ID",
    "Cancel",
    "ConnectionState",
    "ErrorReply",
    "Event",
    "FrameDecoder",
    "Hello",
    "Message",
    "OutstandingRequests",
    "Piece",
    "Request",
    "Response",
    "Role",
    "RpcConnection",
    "Sentinel",
    "StreamEnd",
    "StreamItem",
    "decode_payload",
    "encode_frame",
    "encode_payload",
    "message_from_wire",
]
