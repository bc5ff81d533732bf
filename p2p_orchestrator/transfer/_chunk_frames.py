"""A chunk message read from its frame's pieces, with one copy of its data (sans-IO).

The general path joins a frame's pieces into the payload, walks it with the strict CBOR
validator and decodes it with ``cbor2``, which copies a chunk's data once more: two copies of
every archive byte on the receiving side.  A chunk as :func:`encode_message` writes it has one
fixed layout::

    a3                      map of 3
      61 "t"  65 "chunk"
      65 "index"  <uint>    any of the five unsigned-integer encodings
      64 "data"   <bytes>   a definite-length byte string running to the end of the payload

:func:`chunk_from_pieces` recognizes exactly that layout and copies only the data.  Anything
else -- another key order, another encoding of a key, trailing bytes -- gives ``None`` and goes
the general way.  Every payload it accepts is one the general path accepts too (a map of three
distinct text keys, an integer and a byte string: well within every limit of the profile), and
it builds the message with the same constructor, so the checks of the message itself (index
range, data size) are the same ones, with the same errors.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..wire import Piece
from .messages import Chunk

__all__ = ["chunk_from_pieces"]

_HEAD = b"\xa3\x61t\x65chunk\x65index"
_DATA_KEY = b"\x64data"
_ARGUMENT_BYTES = {24: 1, 25: 2, 26: 4, 27: 8}
_PREFIX_MAX = len(_HEAD) + 9 + len(_DATA_KEY) + 9
_UINT, _BYTES = 0, 2


def chunk_from_pieces(pieces: Sequence[Piece]) -> Chunk | None:
    """The :class:`Chunk` a payload holds in the canonical layout, or ``None`` (decode it generally).

    Raises :class:`~p2p_orchestrator.errors.ProtocolError` (``bad_message``) exactly where the
    general path would: a chunk index out of range, or data of a size no chunk has.
    """
    head = _prefix(pieces)
    if not head.startswith(_HEAD):
        return None
    index = _argument(head, len(_HEAD), _UINT)
    if index is None:
        return None
    value, pos = index
    if head[pos : pos + len(_DATA_KEY)] != _DATA_KEY:
        return None
    length = _argument(head, pos + len(_DATA_KEY), _BYTES)
    if length is None:
        return None
    size, start = length
    if start + size != sum(len(piece) for piece in pieces):
        return None
    return Chunk(value, _join_from(pieces, start))


def _prefix(pieces: Sequence[Piece]) -> bytes:
    head = bytearray()
    for piece in pieces:
        head += piece[: _PREFIX_MAX - len(head)]
        if len(head) >= _PREFIX_MAX:
            break
    return bytes(head)


def _argument(head: bytes, pos: int, major: int) -> tuple[int, int] | None:
    """The argument of the item at ``pos`` if it has major type ``major``, and the position after it."""
    if pos >= len(head) or head[pos] >> 5 != major:
        return None
    info = head[pos] & 0x1F
    if info < 24:
        return info, pos + 1
    size = _ARGUMENT_BYTES.get(info)
    if size is None or pos + 1 + size > len(head):
        return None
    return int.from_bytes(head[pos + 1 : pos + 1 + size], "big"), pos + 1 + size


def _join_from(pieces: Sequence[Piece], offset: int) -> bytes:
    """The bytes of ``pieces`` from ``offset`` on, copied once (or not at all: one whole piece)."""
    rest: list[Piece] = []
    for piece in pieces:
        if offset >= len(piece):
            offset -= len(piece)
            continue
        rest.append(memoryview(piece)[offset:] if offset else piece)
        offset = 0
    return b"".join(rest)
