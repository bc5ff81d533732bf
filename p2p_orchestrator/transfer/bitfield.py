"""A set of chunk indices stored as bits: what a peer holds, verified.

Bit ``i`` is bit ``7 - i % 8`` of byte ``i // 8`` (most significant bit first, as in BitTorrent's
bitfield), so chunk 0 is ``0x80`` of the first byte.  The byte form has exactly
``ceil(size / 8)`` bytes and the spare bits after the last chunk are zero: one set, one encoding.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from .errors import BAD_BITFIELD, fail

__all__ = ["Bitfield"]


def _byte_length(size: int) -> int:
    return (size + 7) // 8


class Bitfield:
    """A mutable set of the integers ``0 .. size - 1``.

    ``Bitfield(4)`` is empty; :meth:`full` has every index; :meth:`from_bytes` reads the wire
    form and refuses anything but the one valid encoding.
    """

    __slots__ = ("_bits", "_count", "_size")

    def __init__(self, size: int) -> None:
        if type(size) is not int or size < 0:
            raise ValueError(f"a bitfield size must be a non-negative int, got {size!r}")
        self._size = size
        self._bits = bytearray(_byte_length(size))
        self._count = 0

    @classmethod
    def full(cls, size: int) -> Bitfield:
        """A bitfield holding every index below ``size``."""
        field = cls(size)
        field._bits[:] = b"\xff" * len(field._bits)
        if size % 8:
            field._bits[-1] = (0xFF << (8 - size % 8)) & 0xFF
        field._count = size
        return field

    @classmethod
    def from_indices(cls, size: int, indices: Iterable[int]) -> Bitfield:
        """A bitfield holding ``indices`` (each must be below ``size``)."""
        field = cls(size)
        for index in indices:
            field.add(index)
        return field

    @classmethod
    def from_bytes(cls, data: bytes, size: int) -> Bitfield:
        """Read the wire form of a ``size``-bit field.

        Raises ``ServiceDistributionError(code="bad_bitfield")`` for a wrong length or a spare
        bit set.
        """
        if len(data) != _byte_length(size):
            fail(BAD_BITFIELD, f"a bitfield of {size} chunks has {_byte_length(size)} bytes, got {len(data)}")
        field = cls(size)
        field._bits[:] = data
        if size % 8 and field._bits[-1] & (0xFF >> (size % 8)):
            fail(BAD_BITFIELD, f"bits past chunk {size - 1} are set")
        field._count = sum(byte.bit_count() for byte in field._bits)
        return field

    def to_bytes(self) -> bytes:
        """The wire form (see the module docstring)."""
        return bytes(self._bits)

    def copy(self) -> Bitfield:
        """An independent copy."""
        field = Bitfield(self._size)
        field._bits[:] = self._bits
        field._count = self._count
        return field

    @property
    def size(self) -> int:
        """How many indices the field can hold (the manifest's chunk count)."""
        return self._size

    @property
    def count(self) -> int:
        """How many indices are set."""
        return self._count

    @property
    def is_full(self) -> bool:
        """Every index is set."""
        return self._count == self._size

    def _check(self, index: int) -> None:
        if type(index) is not int or not 0 <= index < self._size:
            raise IndexError(f"chunk index {index!r} is outside 0..{self._size - 1}")

    def __contains__(self, index: object) -> bool:
        if type(index) is not int or not 0 <= index < self._size:
            return False
        return bool(self._bits[index >> 3] & (0x80 >> (index & 7)))

    def add(self, index: int) -> bool:
        """Set ``index``; return whether it was new.  ``IndexError`` outside the range."""
        self._check(index)
        mask = 0x80 >> (index & 7)
        if self._bits[index >> 3] & mask:
            return False
        self._bits[index >> 3] |= mask
        self._count += 1
        return True

    def __iter__(self) -> Iterator[int]:
        """The set indices, in increasing order."""
        for position, byte in enumerate(self._bits):
            if byte:
                base = position << 3
                for bit in range(8):
                    if byte & (0x80 >> bit):
                        yield base + bit

    def missing(self) -> list[int]:
        """The indices not set, in increasing order."""
        result: list[int] = []
        for position, byte in enumerate(self._bits):
            if byte != 0xFF:
                base = position << 3
                result.extend(
                    base + bit for bit in range(8) if not byte & (0x80 >> bit) and base + bit < self._size
                )
        return result

    def merge(self, other: Bitfield) -> list[int]:
        """Add every index of ``other`` (of the same size); return the new ones, in increasing order."""
        if other._size != self._size:
            raise ValueError(f"cannot merge a bitfield of {other._size} chunks into one of {self._size}")
        mine, theirs = int.from_bytes(self._bits), int.from_bytes(other._bits)
        new = theirs & ~mine
        if not new:
            return []
        last = len(self._bits) * 8 - 1  # the integer's bit ``last - i`` is index ``i``
        added: list[int] = []
        while new:
            top = new.bit_length() - 1
            added.append(last - top)
            new ^= 1 << top
        self._bits[:] = (mine | theirs).to_bytes(len(self._bits))
        self._count += len(added)
        return added

    def issuperset(self, other: Bitfield) -> bool:
        """Whether every index set in ``other`` (of the same size) is set here."""
        if other._size != self._size:
            return False
        return all(mine | theirs == mine for mine, theirs in zip(self._bits, other._bits, strict=True))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Bitfield):
            return NotImplemented
        return self._size == other._size and self._bits == other._bits

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Bitfield(size={self._size}, count={self._count})"
