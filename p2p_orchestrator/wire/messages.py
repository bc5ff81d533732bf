"""The RPC messages: frozen dataclasses that know their wire form.

Every message is a CBOR map whose ``"t"`` field names its type.  Constructing a message checks
its fields, so an ill-formed message cannot be built locally either; :func:`message_from_wire`
additionally refuses unknown types and missing or extra fields.  All refusals raise
``ProtocolError(code="bad_message")`` with a message naming the offending field.

==========  =====================  =================================
``"t"``     class                  fields
==========  =====================  =================================
``req``     :class:`Request`       ``id``, ``method``, ``params``
``res``     :class:`Response`      ``id``, ``result``
``err``     :class:`ErrorReply`    ``id`` (or ``None``), ``error``
``cancel``  :class:`Cancel`        ``id``
``item``    :class:`StreamItem`    ``id``, ``item``
``end``     :class:`StreamEnd`     ``id``
``hello``   :class:`Hello`         ``role``, ``version``, ``info``
==========  =====================  =================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeAlias

from p2p_orchestrator._patterns import METHOD_PATH

from ..errors import OrchestratorError, error_to_wire
from ._constants import MAX_REQUEST_ID, PROTOCOL_VERSION
from ._tagged import MessageTable, Tagged, bad_message, check_error, error_field

__all__ = [
    "Cancel",
    "ErrorReply",
    "Hello",
    "Message",
    "Request",
    "Response",
    "StreamEnd",
    "StreamItem",
    "message_from_wire",
]

METHOD_RE = METHOD_PATH
"""``<namespace>/<method>``, e.g. ``orchestrator/list_services`` or ``echo_service/echo``."""

ROLE_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
"""What a :class:`Hello` sender is, e.g. ``orchestrator``, ``service`` or ``cli``."""


def _check_id(owner: str, value: object) -> None:
    if type(value) is not int or not 1 <= value <= MAX_REQUEST_ID:
        bad_message(f"{owner}.id must be an integer in 1..2**53, got {value!r:.80}")


def _check_dict(owner: str, name: str, value: object) -> None:
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        bad_message(f"{owner}.{name} must be a map with text keys, got {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class Request(Tagged):
    """Ask the peer to run ``method`` with keyword ``params``.

    Answered by exactly one :class:`Response`, or by :class:`StreamItem`\\ s ended with a
    :class:`StreamEnd`, or at any point by an :class:`ErrorReply` with the same ``id``.
    """

    TYPE: ClassVar[str] = "req"
    id: int
    method: str
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_id("Request", self.id)
        if not isinstance(self.method, str) or METHOD_RE.fullmatch(self.method) is None:
            bad_message(f"Request.method must look like 'namespace/method', got {self.method!r:.140}")
        _check_dict("Request", "params", self.params)


@dataclass(frozen=True, slots=True)
class Response(Tagged):
    """The single, final, successful answer to request ``id``."""

    TYPE: ClassVar[str] = "res"
    id: int
    result: Any = None

    def __post_init__(self) -> None:
        _check_id("Response", self.id)


@dataclass(frozen=True, slots=True, eq=False)
class ErrorReply(Tagged):
    """The final, failed answer to request ``id``; ``id=None`` reports a connection-level error.

    On the wire ``error`` is ``{"code", "type", "message"}`` (see
    :func:`~p2p_orchestrator.errors.error_to_wire`); it is rebuilt into the same error class on
    receipt.  Two replies are equal when their ids and wire forms are.
    """

    TYPE: ClassVar[str] = "err"
    id: int | None
    error: OrchestratorError

    def __post_init__(self) -> None:
        if self.id is not None:
            _check_id("ErrorReply", self.id)
        check_error("ErrorReply", self.error)

    def to_wire(self) -> dict[str, Any]:
        return {"t": self.TYPE, "id": self.id, "error": error_to_wire(self.error)}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ErrorReply):
            return NotImplemented
        return self.id == other.id and error_to_wire(self.error) == error_to_wire(other.error)

    def __hash__(self) -> int:
        return hash((self.id, *error_to_wire(self.error).values()))


@dataclass(frozen=True, slots=True)
class Cancel(Tagged):
    """The caller gave up on request ``id``: the server should stop working on it.

    Advisory: the server still ends the request with exactly one final answer (usually an
    :class:`ErrorReply` with code ``cancelled``), which the caller's connection discards.
    """

    TYPE: ClassVar[str] = "cancel"
    id: int

    def __post_init__(self) -> None:
        _check_id("Cancel", self.id)


@dataclass(frozen=True, slots=True)
class StreamItem(Tagged):
    """One item of a streamed answer to request ``id`` (e.g. a log line for ``logs --follow``)."""

    TYPE: ClassVar[str] = "item"
    id: int
    item: Any

    def __post_init__(self) -> None:
        _check_id("StreamItem", self.id)


@dataclass(frozen=True, slots=True)
class StreamEnd(Tagged):
    """The streamed answer to request ``id`` is complete."""

    TYPE: ClassVar[str] = "end"
    id: int

    def __post_init__(self) -> None:
        _check_id("StreamEnd", self.id)


@dataclass(frozen=True, slots=True)
class Hello(Tagged):
    """First message in each direction on channels that exchange greetings.

    ``role`` says what the sender is (``orchestrator``, ``service``, ``cli``...), ``version`` is
    the protocol version it speaks (:data:`PROTOCOL_VERSION`), and ``info`` carries free-form
    details such as a service name or a software version.
    """

    TYPE: ClassVar[str] = "hello"
    role: str
    version: int = PROTOCOL_VERSION
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.role, str) or ROLE_RE.fullmatch(self.role) is None:
            bad_message(f"Hello.role must be a short lowercase name, got {self.role!r:.80}")
        if type(self.version) is not int or not 1 <= self.version <= 2**31:
            bad_message(f"Hello.version must be a positive integer, got {self.version!r:.80}")
        _check_dict("Hello", "info", self.info)


Message: TypeAlias = Request | Response | ErrorReply | Cancel | StreamItem | StreamEnd | Hello
"""Any message that can travel in a frame."""

_MESSAGES = MessageTable[Message]((Request, Response, ErrorReply, Cancel, StreamItem, StreamEnd, Hello))


def message_from_wire(obj: Any) -> Message:
    """Build the message a decoded payload describes, refusing anything not exactly right.

    Raises ``ProtocolError(code="bad_message")`` for a non-map, an unknown or missing ``"t"``, a
    missing or extra field, or a field of the wrong type or out of range.
    """
    cls, kwargs = _MESSAGES.take_apart(obj)
    if cls is ErrorReply:
        kwargs["error"] = error_field("ErrorReply", kwargs["error"])
    return cls(**kwargs)
