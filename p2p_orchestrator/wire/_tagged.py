"""Messages as tagged CBOR maps: what the RPC messages and the transfer messages share.

A message is a frozen dataclass with a ``TYPE`` tag; on the wire it is a map of its fields plus
``"t"``.  :class:`MessageTable` takes such a map apart (a map, a known tag, exactly the fields
of its class), :func:`error_field` rebuilds an error field, and every refusal is
``ProtocolError(code="bad_message")`` (:func:`bad_message`).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, ClassVar, Generic, NoReturn, TypeVar

from ..errors import OrchestratorError, ProtocolError, error_from_wire

__all__ = ["MessageTable", "Tagged", "bad_message", "check_error", "error_field"]

_ERROR_FIELDS = frozenset({"code", "type", "message"})


def bad_message(message: str) -> NoReturn:
    """Refuse a message: ``ProtocolError(message, code="bad_message")``."""
    raise ProtocolError(message, code="bad_message")


def check_error(owner: str, error: object) -> None:
    """Refuse an ``error`` field (of message ``owner``) that is not an :class:`OrchestratorError`."""
    if not isinstance(error, OrchestratorError):
        bad_message(f"{owner}.error must be an OrchestratorError, got {type(error).__name__}")


def error_field(owner: str, error: Any) -> OrchestratorError:
    """The error a received ``error`` field describes (exactly ``code``, ``type``, ``message``, all text)."""
    if (
        not isinstance(error, dict)
        or error.keys() != _ERROR_FIELDS
        or not all(isinstance(value, str) for value in error.values())
    ):
        bad_message(f"{owner}.error must be a map of exactly code, type and message, all text")
    return error_from_wire(error)


class Tagged:
    """Mixin: the ``"t"`` tag and the default wire form (the tag plus every field, by name)."""

    __slots__ = ()
    TYPE: ClassVar[str]
    OPTIONAL: ClassVar[frozenset[str]] = frozenset()
    """Fields a peer may leave out (added to the protocol later); their wire form omits them when unset."""

    def to_wire(self) -> dict[str, Any]:
        """The message as the plain dict that is CBOR-encoded into one frame."""
        wire: dict[str, Any] = {"t": self.TYPE}
        for f in fields(self):  # type: ignore[arg-type]
            wire[f.name] = getattr(self, f.name)
        return wire


T = TypeVar("T", bound=Tagged)


class MessageTable(Generic[T]):
    """The message classes of one protocol, by tag; ``what`` names them in refusals."""

    def __init__(self, classes: tuple[type[T], ...], *, what: str = "message") -> None:
        self._what = what
        self._by_type = {
            cls.TYPE: (cls, frozenset(f.name for f in fields(cls)) - cls.OPTIONAL | {"t"}, cls.OPTIONAL)  # type: ignore[arg-type]
            for cls in classes
        }

    def take_apart(self, obj: Any) -> tuple[type[T], dict[str, Any]]:
        """The class ``obj`` is a message of, and its fields (without ``"t"``), unchecked.

        Refuses a non-map, an unknown or missing ``"t"``, and a missing or extra field (one of
        the class's ``OPTIONAL`` fields may be missing).
        """
        if not isinstance(obj, dict):
            bad_message(f"a message must be a map, got {type(obj).__name__}")
        kind = obj.get("t")
        entry = self._by_type.get(kind) if isinstance(kind, str) else None
        if entry is None:
            bad_message(f"unknown {self._what} type {kind!r:.40}")
        cls, expected, optional = entry
        if not expected <= obj.keys() <= expected | optional:
            missing = ", ".join(sorted(expected - obj.keys())) or "none"
            extra = ", ".join(sorted(repr(key)[:40] for key in obj.keys() - expected - optional)) or "none"
            bad_message(f"{kind!r} message has wrong fields (missing: {missing}; unexpected: {extra})")
        return cls, {name: value for name, value in obj.items() if name != "t"}
