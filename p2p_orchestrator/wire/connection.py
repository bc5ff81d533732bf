"""The RPC connection state machine: bytes in, messages out, and the reverse.

:class:`RpcConnection` owns no socket.  Like h11, it is driven by an adapter that moves bytes::

    conn = RpcConnection("client")
    await stream.send_all(conn.send(Request(conn.next_request_id(), "orchestrator/list_services")))
    while True:
        event = conn.next_event()
        if event is NEED_DATA:
            conn.receive_data(await stream.receive_some(65536))  # b"" at EOF
        elif event is CLOSED:
            break  # fail conn.outstanding_requests().sent with a "connection lost" error
        else:
            ...  # dispatch the message
        if out := conn.data_to_send():
            await stream.send_all(out)

Bytes the connection produces on its own (``busy`` refusals and the final notice after a protocol
error) collect in an outbox: the adapter must flush :meth:`RpcConnection.data_to_send` after
every :meth:`~RpcConnection.next_event` call, including one that raised.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, Literal, NoReturn, TypeAlias

from ..errors import Busy, ProtocolError
from ._cbor import check_limits, decode_payload, encode_payload
from ._constants import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_FRAME_BYTES,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_ITEMS,
    MAX_REQUEST_ID,
    PROTOCOL_VERSION,
)
from ._framing import FrameDecoder, encode_frame
from .messages import (
    Cancel,
    ErrorReply,
    Hello,
    Message,
    Request,
    Response,
    StreamItem,
    message_from_wire,
)

__all__ = [
    "CLOSED",
    "NEED_DATA",
    "ConnectionState",
    "Event",
    "OutstandingRequests",
    "Role",
    "RpcConnection",
    "Sentinel",
]

_MIN_FRAME_BYTES = 1024  # room for the connection's own busy and error notices
_NOTICE_CHARS = 400

Role: TypeAlias = Literal["client", "server", "peer"]
"""``client`` only sends requests, ``server`` only answers them, ``peer`` does both."""


class Sentinel(enum.Enum):
    """Non-message results of :meth:`RpcConnection.next_event`."""

    NEED_DATA = "NEED_DATA"
    CLOSED = "CLOSED"

    def __repr__(self) -> str:
        return self.value


NEED_DATA: Final = Sentinel.NEED_DATA
"""No complete message is buffered: read more bytes and pass them to ``receive_data``."""

CLOSED: Final = Sentinel.CLOSED
"""The peer ended the byte stream cleanly, at a frame boundary; nothing more will arrive."""

Event: TypeAlias = Message | Literal[Sentinel.NEED_DATA, Sentinel.CLOSED]


class ConnectionState(enum.Enum):
    """``OPEN`` until the peer's clean EOF (``CLOSED``) or a protocol violation (``ERROR``)."""

    OPEN = "open"
    CLOSED = "closed"
    ERROR = "error"


@dataclass(frozen=True)
class OutstandingRequests:
    """Requests still waiting for a final answer, as ids in each direction."""

    sent: frozenset[int]
    """Requests we sent (and did not cancel): fail their callers when the connection ends."""
    received: frozenset[int]
    """Requests the peer sent that we have not finished answering: stop their handlers."""


@dataclass
class _Call:
    id: int
    streaming: bool = False  # a StreamItem went by: only StreamEnd or ErrorReply may end it now
    cancelled: bool = False


class RpcConnection:
    """One end of an RPC channel (child-process socketpair, libp2p stream, or control socket).

    Rules it enforces, in both directions:

    * ``client`` sends :class:`Request`/:class:`Cancel` and receives answers, ``server`` the
      reverse, ``peer`` both.  An :class:`ErrorReply` with ``id=None`` (a connection-level error)
      may go either way at any time, even in place of a :class:`Hello`.
    * Request ids are scoped to the direction of the request and must not repeat while the
      request is outstanding; :meth:`next_request_id` hands out fresh ones.
    * Each request gets exactly one final answer: a :class:`Response`, or any number of
      :class:`StreamItem` then a :class:`StreamEnd`, or an :class:`ErrorReply` at any point.
      An answer for an id that is not outstanding is a protocol error.
    * :class:`Cancel` is advisory and may cross the final answer in flight, so cancelling an id
      that is not outstanding is ignored in both directions.  After ``send(Cancel(id))`` the
      connection still waits for the final answer (the peer's in-flight slot stays used until
      then) but drops it and any items instead of returning them.
    * Frames are at most ``max_frame_bytes`` each way; ``max_received_frame_bytes`` lowers the
      limit on what the peer may send (a node gives peers without a role less).
    * With ``exchange_hello=True`` the first message each way must be a :class:`Hello` of
      version :data:`PROTOCOL_VERSION`; otherwise :class:`Hello` is not allowed at all.
    * At most ``max_in_flight`` received requests may be unanswered.  A request beyond that is
      not returned by :meth:`next_event`: the connection answers it itself with
      ``ErrorReply(id, Busy(...))`` placed in the outbox (see :meth:`data_to_send`).

    Errors: anything wrong with received bytes makes :meth:`receive_data` or :meth:`next_event`
    raise :class:`ProtocolError`, puts ``ErrorReply(None, error)`` in the outbox for the peer,
    and moves the connection to ``ERROR``, where every further call except :meth:`data_to_send`
    raises again.  :meth:`send` refuses a message that breaks the rules (or cannot be encoded)
    with :class:`ProtocolError` *without* changing any state, so the adapter may, for example,
    send an :class:`ErrorReply` instead of an unencodable :class:`Response`.
    """

    def __init__(
        self,
        our_role: Role,
        *,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        max_received_frame_bytes: int | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        max_depth: int = DEFAULT_MAX_DEPTH,
        max_items: int = DEFAULT_MAX_ITEMS,
        exchange_hello: bool = False,
    ) -> None:
        if our_role not in ("client", "server", "peer"):
            raise ValueError(f"our_role must be 'client', 'server' or 'peer', got {our_role!r}")
        received = max_frame_bytes if max_received_frame_bytes is None else max_received_frame_bytes
        if min(max_frame_bytes, received) < _MIN_FRAME_BYTES:
            raise ValueError(
                f"frame limits must be at least {_MIN_FRAME_BYTES}, got {max_frame_bytes!r} and {received!r}"
            )
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be positive, got {max_in_flight!r}")
        check_limits(max_depth, max_items)
        self._role: Role = our_role
        self._calls = our_role != "server"
        self._serves = our_role != "client"
        self._decoder = FrameDecoder(received)
        self._max_frame_bytes = max_frame_bytes
        self._max_in_flight = max_in_flight
        self._limits = {"max_depth": max_depth, "max_items": max_items}
        self._sent: dict[int, _Call] = {}
        self._received: dict[int, _Call] = {}
        self._next_id = 1
        self._state = ConnectionState.OPEN
        self._error: ProtocolError | None = None
        self._eof = False
        self._outbox = bytearray()
        self._hello_pending_out = exchange_hello
        self._hello_pending_in = exchange_hello
        self._peer_hello: Hello | None = None

    @property
    def our_role(self) -> Role:
        """Which messages this end may send and receive (see :data:`Role`)."""
        return self._role

    @property
    def state(self) -> ConnectionState:
        """``OPEN``, ``CLOSED`` after :data:`CLOSED` was returned, or ``ERROR`` after a violation."""
        return self._state

    @property
    def peer_hello(self) -> Hello | None:
        """The peer's :class:`Hello`, once received (only with ``exchange_hello=True``)."""
        return self._peer_hello

    @property
    def buffered_bytes(self) -> int:
        """Received bytes not yet turned into events (bounded; see :class:`FrameDecoder`)."""
        return self._decoder.buffered_bytes

    def issued(self, request_id: int) -> bool:
        """Whether ``request_id`` is one :meth:`next_request_id` gave out (an answer to it is no surprise)."""
        return 0 < request_id < self._next_id

    def next_request_id(self) -> int:
        """Return a fresh id for a request we are about to send (1, 2, 3...)."""
        while self._next_id in self._sent:
            self._next_id += 1
        if self._next_id > MAX_REQUEST_ID:
            raise ProtocolError("request ids are exhausted on this connection", code="ids_exhausted")
        self._next_id += 1
        return self._next_id - 1

    def outstanding_requests(self) -> OutstandingRequests:
        """Ids awaiting a final answer: call this after ``CLOSED`` or an error to fail them."""
        sent = frozenset(rid for rid, call in self._sent.items() if not call.cancelled)
        return OutstandingRequests(sent=sent, received=frozenset(self._received))

    def data_to_send(self) -> bytes:
        """Take the bytes the connection generated itself; the adapter must write them out."""
        data = bytes(self._outbox)
        self._outbox.clear()
        return data

    def send(self, msg: Message) -> bytes:
        """Check that sending ``msg`` is allowed now, record it, and return its frame bytes.

        The adapter writes the bytes out whole.  ``b""`` means there is nothing to send (a
        :class:`Cancel` for a request that already finished or was already cancelled).  If the
        message breaks a rule or cannot be encoded, :class:`ProtocolError` is raised and the
        connection is unchanged: e.g. answer with an :class:`ErrorReply` instead.
        """
        self._check_usable()
        if self._state is ConnectionState.CLOSED:
            _refuse("connection_closed", "the peer closed the connection")
        call = self._check_send(msg)
        if isinstance(msg, Cancel) and (call is None or call.cancelled):
            return b""  # already finished or already cancelled: nothing to do
        frame = self._frame(msg)  # may raise: nothing is recorded until it succeeds
        if isinstance(msg, Hello):
            self._hello_pending_out = False
        elif isinstance(msg, Request):
            self._sent[msg.id] = _Call(msg.id)
        elif call is not None:
            if isinstance(msg, Cancel):
                call.cancelled = True
            elif isinstance(msg, StreamItem):
                call.streaming = True
            else:  # Response, StreamEnd or ErrorReply: the final answer
                del self._received[call.id]
        return frame

    def receive_data(self, data: bytes) -> None:
        """Pass bytes read from the transport, in pieces of any size; ``b""`` means EOF.

        Raises :class:`ProtocolError` at once for a frame header over the limit (the rest of the
        frame is never buffered); other problems surface from :meth:`next_event`.
        """
        self._check_usable()
        if self._eof:
            if data:
                _refuse("data_after_eof", "receive_data() called with data after EOF")
            return
        if not data:
            self._eof = True
            return
        try:
            self._decoder.feed(data)
        except ProtocolError as exc:
            self._fail(exc)

    def next_event(self) -> Event:
        """Return the next message, :data:`NEED_DATA` or :data:`CLOSED`.

        Call it until it returns :data:`NEED_DATA` before reading more, so that at most one partial
        frame is ever buffered.  Answers to requests we cancelled, ``busy`` refusals and repeated
        cancels are consumed here without an event.  Raises :class:`ProtocolError` if the peer
        broke the protocol; the explanation for the peer is then in :meth:`data_to_send`.
        """
        self._check_usable()
        if self._state is ConnectionState.CLOSED:
            return CLOSED
        try:
            while True:
                event = self._next_event()
                if event is not None:
                    return event
        except ProtocolError as exc:
            self._fail(exc)

    # -- internals ---------------------------------------------------------------------------

    def _next_event(self) -> Event | None:
        payload = self._decoder.next_frame()
        if payload is not None:
            return self._receive(message_from_wire(decode_payload(payload, **self._limits)))
        if not self._eof:
            return NEED_DATA
        if not self._decoder.at_frame_boundary:
            _refuse("truncated_frame", f"EOF inside a frame ({self._decoder.buffered_bytes} bytes of it)")
        self._state = ConnectionState.CLOSED
        return CLOSED

    def _receive(self, msg: Message) -> Message | None:
        """Apply a received message to the state; ``None`` means it produces no event."""
        _check_hello_place(msg, self._hello_pending_in, "expected a Hello first, got {}")
        if isinstance(msg, Hello):
            if msg.version != PROTOCOL_VERSION:
                _refuse(
                    "unsupported_version", f"peer speaks version {msg.version}, we speak {PROTOCOL_VERSION}"
                )
            self._hello_pending_in = False
            self._peer_hello = msg
            return msg
        if isinstance(msg, (Request, Cancel)):
            if not self._serves:
                _refuse("unexpected_message", f"a {self._role} does not accept {type(msg).__name__}")
            if isinstance(msg, Cancel):
                call = self._received.get(msg.id)
                if call is None or call.cancelled:
                    return None  # crossed our final answer, or a repeat
                call.cancelled = True
                return msg
            if msg.id in self._received:
                _refuse("duplicate_request_id", f"request id {msg.id} is already outstanding")
            if len(self._received) >= self._max_in_flight:
                busy = Busy(f"{self._max_in_flight} requests already in flight; retry later")
                self._outbox += self._frame(ErrorReply(msg.id, busy))
                return None
            self._received[msg.id] = _Call(msg.id)
            return msg
        # Response, ErrorReply, StreamItem, StreamEnd: answers to our requests.
        rid = msg.id
        if rid is None:
            return msg  # ErrorReply about the whole connection: the peer will close it
        if not self._calls:
            _refuse("unexpected_message", f"a server does not accept {type(msg).__name__}")
        call = self._sent.get(rid)
        if call is None:
            _refuse("unknown_request_id", f"{type(msg).__name__} for id {rid}, which is not outstanding")
        if isinstance(msg, StreamItem):
            call.streaming = True
        elif isinstance(msg, Response) and call.streaming:
            _refuse("unexpected_message", f"Response to request {rid} after stream items")
        else:
            del self._sent[rid]
        return None if call.cancelled else msg

    def _check_send(self, msg: Message) -> _Call | None:
        """Validate an outgoing message; return the outstanding call it refers to, if any."""
        _check_hello_place(msg, self._hello_pending_out, "send a Hello before {}")
        if isinstance(msg, Hello):
            if msg.version != PROTOCOL_VERSION:
                _refuse("unsupported_version", f"this implementation speaks version {PROTOCOL_VERSION}")
            return None
        if isinstance(msg, (Request, Cancel)):
            if not self._calls:
                _refuse("unexpected_message", f"a server cannot send {type(msg).__name__}")
            if isinstance(msg, Request) and msg.id in self._sent:
                _refuse("duplicate_request_id", f"request id {msg.id} is already outstanding")
            return self._sent.get(msg.id)
        rid = msg.id
        if rid is None:
            return None  # ErrorReply about the whole connection: any role may send it
        if not self._serves:
            _refuse("unexpected_message", f"a client cannot send {type(msg).__name__}")
        call = self._received.get(rid)
        if call is None:
            _refuse("unknown_request_id", f"no outstanding request {rid} to answer")
        if isinstance(msg, Response) and call.streaming:
            _refuse("unexpected_message", f"request {rid} is streaming: end it with StreamEnd")
        return call

    def _frame(self, msg: Message) -> bytes:
        payload = encode_payload(msg.to_wire(), **self._limits)
        return encode_frame(payload, self._max_frame_bytes)

    def _check_usable(self) -> None:
        if self._error is not None:
            raise ProtocolError(f"connection already failed: {self._error.message}", code=self._error.code)

    def _fail(self, error: ProtocolError) -> NoReturn:
        self._state = ConnectionState.ERROR
        self._error = error
        notice = ProtocolError(error.message[:_NOTICE_CHARS], code=error.code)
        self._outbox += self._frame(ErrorReply(None, notice))
        raise error


def _is_notice(msg: Message) -> bool:
    """A connection-level error may be sent at any time, even instead of a Hello."""
    return isinstance(msg, ErrorReply) and msg.id is None


def _check_hello_place(msg: Message, hello_pending: bool, hello_required: str) -> None:
    """Refuse ``msg`` where the Hello exchange does not allow it: anything but a Hello (or a
    notice) while one is pending (``hello_required``, formatted with the message's type), a
    Hello after it."""
    if hello_pending != isinstance(msg, Hello) and not _is_notice(msg):
        if hello_pending:
            _refuse("hello_required", hello_required.format(type(msg).__name__))
        _refuse("unexpected_message", "Hello is only allowed as the first message, when expected")


def _refuse(code: str, message: str) -> NoReturn:
    raise ProtocolError(message, code=code)
