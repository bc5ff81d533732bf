"""Reading a release statement's CBOR: one flat map of scalars, and nothing else.

A statement is untrusted bytes, so it is not handed to a general decoder (which would build
datetimes, bignums, sets or shared references from tags).  This reader knows exactly the items a
statement uses: a top-level map with text keys whose values are unsigned integers, byte strings,
text strings or ``null``.  Anything else (tags, floats, arrays, nested maps, indefinite lengths,
negative integers, trailing bytes) is refused with ``bad_release``.  Canonical form (shortest
arguments, sorted keys) is checked by the caller, which encodes the result again and compares.
"""

from __future__ import annotations

from typing import NoReturn

from p2p_orchestrator.errors import ReleaseError

__all__ = ["Scalar", "read_flat_map"]

Scalar = int | bytes | str | None
"""What a statement's map may hold: an unsigned integer, a byte string, a text string, ``null``."""

_MAP, _UINT, _BYTES, _TEXT, _SIMPLE = 5, 0, 2, 3, 7
_NULL = 22
_ARGUMENT_BYTES = {24: 1, 25: 2, 26: 4, 27: 8}
_MAX_PAIRS = 32


def _refuse(reason: str) -> NoReturn:
    raise ReleaseError(f"not a release statement: {reason}", code="bad_release")


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def head(self) -> tuple[int, int]:
        """The next item's major type and argument (a length or a value)."""
        if self.pos >= len(self.data):
            _refuse("the CBOR ends in the middle of an item")
        initial = self.data[self.pos]
        major, info = initial >> 5, initial & 0x1F
        self.pos += 1
        if major == _SIMPLE:
            return major, info
        if info < 24:
            return major, info
        size = _ARGUMENT_BYTES.get(info)
        if size is None:
            _refuse(f"byte 0x{initial:02x} at offset {self.pos - 1} is an indefinite length or reserved")
        return major, int.from_bytes(self.take(size), "big")

    def take(self, size: int) -> bytes:
        if size > len(self.data) - self.pos:
            _refuse(f"an item at offset {self.pos} runs past the end of the {len(self.data)} bytes")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def text(self, length: int) -> str:
        try:
            return self.take(length).decode("utf-8")
        except UnicodeDecodeError:
            _refuse("a text string is not valid UTF-8")

    def scalar(self) -> Scalar:
        major, argument = self.head()
        if major == _UINT:
            return argument
        if major == _BYTES:
            return self.take(argument)
        if major == _TEXT:
            return self.text(argument)
        if major == _SIMPLE and argument == _NULL:
            return None
        _refuse(f"unexpected CBOR item (major type {major}) at offset {self.pos - 1}")


def read_flat_map(data: bytes) -> dict[str, Scalar]:
    """The map ``data`` holds; ``ReleaseError`` (``bad_release``) for anything else."""
    reader = _Reader(data)
    major, pairs = reader.head()
    if major != _MAP:
        _refuse("the CBOR is not a map")
    if pairs > _MAX_PAIRS:
        _refuse(f"a map of {pairs} entries (a statement has far fewer)")
    result: dict[str, Scalar] = {}
    for _ in range(pairs):
        key = reader.scalar()
        if not isinstance(key, str):
            _refuse("a map key is not a text string")
        if key in result:
            _refuse(f"the key {key[:32]!r} appears twice")
        result[key] = reader.scalar()
    if reader.pos != len(data):
        _refuse(f"{len(data) - reader.pos} bytes follow the map")
    return result
