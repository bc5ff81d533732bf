"""A strict streaming reader of ustar, pax and GNU tar headers.

Hand-written rather than :mod:`tarfile`, which quietly treats a corrupt header
after the first as the end of the archive and accepts many member kinds.  This
reader accepts regular files and directories only, plus pax (``x``, ``g``) and
GNU long-name (``L``) headers as metadata, and refuses everything else.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from p2p_orchestrator.archive._gunzip import BoundedGunzip
from p2p_orchestrator.archive._limits import ArchiveLimits
from p2p_orchestrator.errors import ServiceInstallationError

__all__ = ["TarMember", "TarReader"]

BLOCK = 512
_ZERO_BLOCK = bytes(BLOCK)
_POSIX_MAGIC = b"ustar\x0000"
_GNU_MAGIC = b"ustar  \x00"
_REGULAR = (b"0", b"\x00")
_DIRECTORY = b"5"
_PAX, _PAX_GLOBAL, _GNU_LONGNAME = b"x", b"g", b"L"
_TYPE_NAMES = {
    b"1": "hard link",
    b"2": "symbolic link",
    b"3": "character device",
    b"4": "block device",
    b"6": "FIFO",
    b"7": "contiguous file",
    b"D": "GNU dump directory",
    b"K": "GNU long link name",
    b"M": "GNU multi-volume continuation",
    b"N": "GNU old long name",
    b"S": "GNU sparse file",
    b"V": "volume label",
}
_DATA_CHUNK = 64 * 1024


def _bad(message: str, code: str = "bad_tar_header") -> ServiceInstallationError:
    return ServiceInstallationError(message, code=code)


@dataclass(frozen=True)
class TarMember:
    """A regular file or directory header, its name resolved from any extended headers."""

    path: str
    is_dir: bool
    size: int
    executable: bool


@dataclass(frozen=True)
class _Header:
    name: bytes
    typeflag: bytes
    size: int
    mode: int


def _number(field: bytes, what: str, name: bytes) -> int:
    if field[:1] == b"\x80":
        return int.from_bytes(field[1:], "big")
    if field[:1] == b"\xff":
        raise _bad(f"tar header of {_show(name)}: negative {what}")
    text = field.split(b"\x00", 1)[0].strip(b" ")
    if text and not all(48 <= byte <= 55 for byte in text):
        raise _bad(f"tar header of {_show(name)}: {what} field is not octal")
    return int(text, 8) if text else 0


def _show(name: bytes) -> str:
    return repr(name.decode("utf-8", "backslashreplace"))


def _parse_header(block: bytes) -> _Header:
    name = block[:100].split(b"\x00", 1)[0]
    stored = _number(block[148:156], "checksum", name)
    unsigned = sum(block) - sum(block[148:156]) + 8 * 32
    signed = sum(struct.unpack("148b8x356b", block)) + 8 * 32
    if stored not in (unsigned, signed):
        raise _bad(f"tar header of {_show(name)}: checksum mismatch")
    magic = block[257:265]
    if magic == _POSIX_MAGIC:
        prefix = block[345:500].split(b"\x00", 1)[0]
        if prefix:
            name = prefix + b"/" + name
    elif magic != _GNU_MAGIC:
        raise _bad(f"tar header of {_show(name)}: not a ustar, pax or GNU header")
    return _Header(
        name=name,
        typeflag=block[156:157],
        size=_number(block[124:136], "size", name),
        mode=_number(block[100:108], "mode", name),
    )


def _parse_pax(payload: bytes, name: bytes) -> dict[str, bytes]:
    records: dict[str, bytes] = {}
    pos = 0
    while pos < len(payload):
        space = payload.find(b" ", pos, pos + 12)
        digits = payload[pos:space]
        if space < 0 or not digits.isdigit() or digits.startswith(b"0"):
            raise _bad(f"pax header of {_show(name)}: malformed record length", "bad_pax_header")
        end = pos + int(digits)
        record = payload[space + 1 : end]
        if end > len(payload) or not record.endswith(b"\n") or b"=" not in record:
            raise _bad(f"pax header of {_show(name)}: malformed record", "bad_pax_header")
        raw_key, _, value = record[:-1].partition(b"=")
        try:
            key = raw_key.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _bad(f"pax header of {_show(name)}: keyword is not UTF-8", "bad_pax_header") from exc
        if not key or key in records:
            raise _bad(f"pax header of {_show(name)}: empty or repeated keyword {key!r}", "bad_pax_header")
        records[key] = value
        pos = end
    return records


def _decode_name(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _bad(f"archive member {_show(raw)}: name is not valid UTF-8", "bad_member_name") from exc


class TarReader:
    """Walk the members of a tar stream: ``for member in reader: ...``.

    Before advancing, the caller may read a regular file's data with
    :meth:`data`; whatever it leaves unread is skipped.  The iteration ends at
    the end-of-archive marker, after checking that only zeros and a clean end
    of the gzip stream follow it.
    """

    def __init__(self, stream: BoundedGunzip, limits: ArchiveLimits) -> None:
        self._stream = stream
        self._limits = limits
        self._unread = 0
        self._padding = 0
        self._first = True

    def __iter__(self) -> Iterator[TarMember]:
        while (member := self._next()) is not None:
            yield member

    def data(self) -> Iterator[bytes]:
        """Yield the current member's data in chunks, then skip its block padding."""
        while self._unread:
            chunk = self._stream.read(min(self._unread, _DATA_CHUNK))
            self._unread -= len(chunk)
            yield chunk
        self._skip_padding()

    def _skip_padding(self) -> None:
        if self._padding:
            self._stream.read_exact(self._padding)
            self._padding = 0

    def _next(self) -> TarMember | None:
        for _ in self.data():
            pass
        pax: dict[str, bytes] | None = None
        long_name: bytes | None = None
        extended = 0
        while True:
            block = self._read_header_block()
            if block == _ZERO_BLOCK:
                if pax is not None or long_name is not None:
                    raise _bad("extended tar header is not followed by a member")
                self._finish()
                return None
            header = self._parse_header(block)
            if header.typeflag in (_PAX, _PAX_GLOBAL, _GNU_LONGNAME):
                extended += header.size
                if extended > self._limits.max_header_bytes:
                    raise _bad(
                        f"extended tar header of {_show(long_name or header.name)} is larger than "
                        f"{self._limits.max_header_bytes} bytes",
                        "header_too_large",
                    )
                payload = self._read_payload(header.size)
                if header.typeflag == _GNU_LONGNAME:
                    if long_name is not None:
                        raise _bad(f"two GNU long-name headers in a row near {_show(header.name)}")
                    long_name = self._parse_long_name(payload, header.name)
                elif header.typeflag == _PAX:
                    if pax is not None:
                        raise _bad(f"two pax headers in a row near {_show(header.name)}", "bad_pax_header")
                    pax = _parse_pax(payload, header.name)
                else:
                    if pax is not None or long_name is not None:
                        raise _bad("global pax header between an extended header and its member")
                    self._check_global(_parse_pax(payload, header.name), header.name)
                    extended = 0
                continue
            return self._member(header, pax or {}, long_name)

    def _read_header_block(self) -> bytes:
        if not self._first:
            return self._stream.read_exact(BLOCK)
        try:
            return self._stream.read_exact(BLOCK)
        except ServiceInstallationError as exc:
            if not self._stream.ended:
                raise
            raise _bad("not a tar archive: shorter than one header", "not_tar") from exc

    def _parse_header(self, block: bytes) -> _Header:
        if not self._first:
            return _parse_header(block)
        try:
            header = _parse_header(block)
        except ServiceInstallationError as exc:
            raise _bad(f"not a tar archive: {exc.message}", "not_tar") from exc
        self._first = False
        return header

    def _read_payload(self, size: int) -> bytes:
        payload = self._stream.read_exact(size)
        self._stream.read_exact(-size % BLOCK)
        return payload

    @staticmethod
    def _parse_long_name(payload: bytes, name: bytes) -> bytes:
        long_name, _, rest = payload.partition(b"\x00")
        if not long_name or rest.strip(b"\x00"):
            raise _bad(f"malformed GNU long-name header near {_show(name)}")
        return long_name

    @staticmethod
    def _check_global(records: dict[str, bytes], name: bytes) -> None:
        if "path" in records or "size" in records or "linkpath" in records:
            raise _bad(f"global pax header {_show(name)} sets a path, size or link target", "bad_pax_header")
        if any(key.startswith("GNU.sparse.") for key in records):
            raise _bad(f"global pax header {_show(name)} describes a sparse file", "bad_member_type")

    def _member(self, header: _Header, pax: dict[str, bytes], long_name: bytes | None) -> TarMember:
        if "path" in pax and not pax["path"]:
            raise _bad(f"pax header of {_show(header.name)}: empty path", "bad_pax_header")
        path = _decode_name(pax.get("path") or long_name or header.name)
        if header.typeflag in _REGULAR:
            is_dir = False
        elif header.typeflag == _DIRECTORY:
            is_dir = True
        else:
            kind = _TYPE_NAMES.get(header.typeflag, f"unknown type {header.typeflag!r}")
            raise _bad(
                f"archive member {path!r}: {kind} (only regular files and directories are allowed)",
                "bad_member_type",
            )
        if "linkpath" in pax:
            raise _bad(f"archive member {path!r}: pax header sets a link target", "bad_member_type")
        if any(key.startswith("GNU.sparse.") for key in pax):
            raise _bad(f"archive member {path!r}: sparse files are not allowed", "bad_member_type")
        size = header.size
        if "size" in pax:
            text = pax["size"]
            if not (text.isdigit() and len(text) <= 20):
                raise _bad(f"archive member {path!r}: malformed pax size", "bad_pax_header")
            size = int(text)
        if is_dir and size:
            raise _bad(f"archive member {path!r}: directory with data")
        self._unread = size
        self._padding = -size % BLOCK
        return TarMember(path=path, is_dir=is_dir, size=size, executable=bool(header.mode & 0o111))

    def _finish(self) -> None:
        second = self._stream.read_exact(BLOCK)
        if second != _ZERO_BLOCK:
            raise _bad("data after a lone zero block (corrupt archive)", "trailing_data")
        self._stream.finish()
