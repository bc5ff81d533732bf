"""The strict CBOR profile (RFC 8949) every frame payload must follow.

Decoding first walks the raw bytes with a small validator of the CBOR grammar and only then hands
them to ``cbor2``.  The validator refuses everything outside a plain JSON-like data model:

* tags (major type 6), so no bytes can make the decoder build datetimes, sets, shared references,
  bignums, rationals or any other object;
* indefinite-length strings, arrays and maps, and stray "break" codes;
* simple values other than ``false``, ``true``, ``null`` and half/single/double floats;
* map keys that are not text strings, and duplicate keys within one map;
* text strings that are not valid UTF-8;
* nesting deeper than ``max_depth``, more than ``max_items`` data items, lengths that run past
  the end of the payload, and bytes left over after the single top-level item;
* a top-level item that is not a map.

What is left decodes to ``dict`` (text keys), ``list``, ``str``, ``bytes``, ``int``, ``float``,
``bool`` and ``None``.  Encoding accepts exactly those types (plus ``tuple`` and ``bytearray``,
which encode as arrays and byte strings) and never emits a tag.
"""

from __future__ import annotations

from typing import Any, NoReturn

import cbor2

from ..errors import ProtocolError
from ._constants import DEFAULT_MAX_DEPTH, DEFAULT_MAX_ITEMS

__all__ = ["decode_payload", "encode_payload"]

_MAX_DEPTH_LIMIT = 128  # keeps the recursive walkers far from Python's recursion limit
_UINT_MAX = 2**64 - 1  # widest integer CBOR major types 0/1 hold without a bignum tag
_NINT_MIN = -(2**64)
_ARGUMENT_BYTES = {24: 1, 25: 2, 26: 4, 27: 8}
_FLOAT_BYTES = {25: 2, 26: 4, 27: 8}
_FALSE, _TRUE, _NULL, _UNDEFINED = 20, 21, 22, 23
_MAJOR_NAMES = (
    "unsigned integer",
    "negative integer",
    "byte string",
    "text string",
    "array",
    "map",
    "tag",
    "simple value/float",
)


def _fail(code: str, message: str) -> NoReturn:
    raise ProtocolError(message, code=code)


def check_limits(max_depth: int, max_items: int) -> None:
    """Raise ``ValueError`` for limits the walkers cannot honour."""
    if not 1 <= max_depth <= _MAX_DEPTH_LIMIT:
        raise ValueError(f"max_depth must be in 1..{_MAX_DEPTH_LIMIT}, got {max_depth!r}")
    if max_items < 1:
        raise ValueError(f"max_items must be positive, got {max_items!r}")


class _Validator:
    """One pass over one payload; raises :class:`ProtocolError` at the first violation."""

    __slots__ = ("data", "end", "items", "max_depth", "max_items")

    def __init__(self, data: bytes, max_depth: int, max_items: int) -> None:
        self.data = data
        self.end = len(data)
        self.max_depth = max_depth
        self.max_items = max_items
        self.items = 0

    def item(self, pos: int, depth: int) -> int:
        """Validate the data item starting at ``pos``; return the position just after it."""
        self._count(1, pos)
        major, info, pos = self._initial(pos)
        if major == 7:
            return self._simple(info, pos)
        length, pos = self._argument(major, info, pos)
        if major <= 1:
            return pos
        if major == 2:
            return self._skip(length, pos)
        if major == 3:
            return self._text(length, pos)[1]
        if depth >= self.max_depth:
            _fail("cbor_too_deep", f"containers nested deeper than {self.max_depth} levels")
        if major == 4:
            self._expect_room(length, pos)
            for _ in range(length):
                pos = self.item(pos, depth + 1)
            return pos
        return self._map(length, pos, depth + 1)

    def _map(self, pairs: int, pos: int, depth: int) -> int:
        self._expect_room(2 * pairs, pos)
        seen: set[str] = set()
        for _ in range(pairs):
            self._count(1, pos)
            major, info, key_pos = self._initial(pos)
            if major != 3:
                _fail("cbor_bad_key", f"map key at byte {pos} is a {_MAJOR_NAMES[major]}, not a text string")
            length, key_pos = self._argument(major, info, key_pos)
            key, pos = self._text(length, key_pos)
            if key in seen:
                _fail("cbor_duplicate_key", f"duplicate map key {key[:64]!r} at byte {key_pos}")
            seen.add(key)
            pos = self.item(pos, depth)
        return pos

    def _count(self, n: int, pos: int) -> None:
        self.items += n
        if self.items > self.max_items:
            _fail("cbor_too_many_items", f"more than {self.max_items} data items (at byte {pos})")

    def _initial(self, pos: int) -> tuple[int, int, int]:
        if pos >= self.end:
            _fail("cbor_truncated", "payload ends in the middle of a data item")
        initial = self.data[pos]
        major = initial >> 5
        if major == 6:
            _fail("cbor_tag_forbidden", f"CBOR tag at byte {pos}: tags are not allowed")
        return major, initial & 0x1F, pos + 1

    def _argument(self, major: int, info: int, pos: int) -> tuple[int, int]:
        if info < 24:
            return info, pos
        size = _ARGUMENT_BYTES.get(info)
        if size is None:
            if info == 31 and major >= 2:
                _fail("cbor_indefinite", f"indefinite-length {_MAJOR_NAMES[major]} at byte {pos - 1}")
            _fail("bad_cbor", f"invalid additional information {info} at byte {pos - 1}")
        return int.from_bytes(self._take(size, pos), "big"), pos + size

    def _simple(self, info: int, pos: int) -> int:
        if info in (_FALSE, _TRUE, _NULL):
            return pos
        size = _FLOAT_BYTES.get(info)
        if size is not None:
            self._take(size, pos)
            return pos + size
        if info == _UNDEFINED:
            _fail("cbor_bad_simple", f"'undefined' at byte {pos - 1} is not allowed")
        if info < _UNDEFINED or info == 24:
            _fail("cbor_bad_simple", f"unassigned simple value at byte {pos - 1}")
        if info == 31:
            _fail("bad_cbor", f"unexpected 'break' code at byte {pos - 1}")
        _fail("bad_cbor", f"invalid additional information {info} at byte {pos - 1}")

    def _text(self, length: int, pos: int) -> tuple[str, int]:
        end = self._skip(length, pos)
        try:
            with memoryview(self.data) as view, view[pos:end] as raw:
                text = str(raw, "utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(
                f"text string at byte {pos} is not valid UTF-8: {exc.reason}", code="cbor_bad_utf8"
            ) from exc
        return text, end

    def _skip(self, length: int, pos: int) -> int:
        end = pos + length
        if end > self.end:
            _fail("cbor_truncated", f"a length of {length} at byte {pos} runs past the end of the payload")
        return end

    def _take(self, size: int, pos: int) -> bytes:
        return self.data[pos : self._skip(size, pos)]

    def _expect_room(self, items: int, pos: int) -> None:
        # Every item takes at least one byte: refuse impossible counts before looping over them.
        if items > self.end - pos:
            _fail("cbor_truncated", f"a container of {items} items at byte {pos} runs past the end")


def decode_payload(
    payload: bytes, *, max_depth: int = DEFAULT_MAX_DEPTH, max_items: int = DEFAULT_MAX_ITEMS
) -> Any:
    """Decode one frame payload under the strict profile; the result is always a ``dict``.

    Raises :class:`ProtocolError` with one of the codes ``bad_cbor``, ``cbor_not_map``,
    ``cbor_truncated``, ``cbor_trailing_bytes``, ``cbor_tag_forbidden``, ``cbor_indefinite``,
    ``cbor_bad_simple``, ``cbor_bad_key``, ``cbor_duplicate_key``, ``cbor_bad_utf8``,
    ``cbor_too_deep`` or ``cbor_too_many_items``.
    """
    check_limits(max_depth, max_items)
    data = bytes(payload)
    if not data:
        _fail("cbor_truncated", "empty payload")
    if data[0] & 0x1F in (28, 29, 30) or data[0] == 0xFF:  # reserved, or a stray break: not CBOR at all
        _fail("bad_cbor", f"initial byte 0x{data[0]:02x} is not well-formed CBOR")
    if data[0] >> 5 != 5:
        _fail("cbor_not_map", f"top-level item is a {_MAJOR_NAMES[data[0] >> 5]}, not a map")
    end = _Validator(data, max_depth, max_items).item(0, 0)
    if end != len(data):
        _fail("cbor_trailing_bytes", f"{len(data) - end} bytes follow the top-level item")
    try:
        # A fresh decoder per payload: no state (shared references, string references) can leak
        # from one frame into the next.  The flags repeat the validator's rules as a backstop.
        return cbor2.loads(data, max_depth=max_depth, allow_indefinite=False, allow_duplicate_keys=False)
    except cbor2.CBORDecodeError as exc:
        raise ProtocolError(f"undecodable CBOR: {exc}", code="bad_cbor") from exc


class _Unencodable(Exception):
    """Internal: carries the failing value's location outwards so the message can name it."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.path: list[str] = []


class _EncodeChecker:
    __slots__ = ("items", "max_depth", "max_items")

    def __init__(self, max_depth: int, max_items: int) -> None:
        self.max_depth = max_depth
        self.max_items = max_items
        self.items = 0

    def check(self, value: Any, depth: int) -> None:
        self.items += 1
        if self.items > self.max_items:
            raise _Unencodable("cbor_too_many_items", f"more than {self.max_items} data items")
        if value is None or isinstance(value, (bool, float, str, bytes, bytearray)):
            return
        if isinstance(value, int):
            if not _NINT_MIN <= value <= _UINT_MAX:
                raise _Unencodable(
                    "unencodable", "integer outside the 64-bit range CBOR encodes without tags"
                )
            return
        if not isinstance(value, (list, tuple, dict)):
            raise _Unencodable("unencodable", f"values of type {_type_name(value)} cannot be sent")
        if depth >= self.max_depth:
            raise _Unencodable("cbor_too_deep", f"containers nested deeper than {self.max_depth} levels")
        if isinstance(value, dict):
            for key, item in value.items():
                self.items += 1
                if not isinstance(key, str):
                    raise _Unencodable("unencodable", f"map key {key!r} is a {_type_name(key)}, not a str")
                self._check_child(item, depth + 1, f"[{key[:64]!r}]")
        else:
            for index, item in enumerate(value):
                self._check_child(item, depth + 1, f"[{index}]")

    def _check_child(self, value: Any, depth: int, step: str) -> None:
        try:
            self.check(value, depth)
        except _Unencodable as exc:
            exc.path.append(step)
            raise


def _type_name(value: object) -> str:
    cls = type(value)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def encode_payload(
    obj: dict[str, Any], *, max_depth: int = DEFAULT_MAX_DEPTH, max_items: int = DEFAULT_MAX_ITEMS
) -> bytes:
    """Encode a ``dict`` as CBOR that :func:`decode_payload` accepts with the same limits.

    Allowed values: ``None``, ``bool``, ``int`` (-2**64 .. 2**64-1), ``float``, ``str``,
    ``bytes``/``bytearray``, ``list``/``tuple`` and ``dict`` with ``str`` keys.  Anything else
    (a ``datetime``, a ``set``, a ``Decimal``, a custom object...) raises
    ``ProtocolError(code="unencodable")`` naming the type and where it sits, e.g.
    ``values of type datetime.datetime cannot be sent (at ["result"]["when"])``.
    Exceeding the limits raises ``cbor_too_deep`` or ``cbor_too_many_items``.
    """
    check_limits(max_depth, max_items)
    if not isinstance(obj, dict):
        _fail("unencodable", f"a payload must be a dict, not a {_type_name(obj)}")
    try:
        _EncodeChecker(max_depth, max_items).check(obj, 0)
    except _Unencodable as exc:
        where = "".join(reversed(exc.path)) or "top level"
        raise ProtocolError(f"{exc.reason} (at {where})", code=exc.code) from None
    try:
        return cbor2.dumps(obj)
    except (cbor2.CBOREncodeError, UnicodeEncodeError) as exc:
        # E.g. a str holding a lone surrogate, which UTF-8 cannot represent.
        raise ProtocolError(f"cannot encode payload: {exc}", code="unencodable") from exc
