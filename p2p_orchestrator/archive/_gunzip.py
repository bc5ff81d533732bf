"""A bounded, hashing, single-pass gzip reader."""

from __future__ import annotations

import hashlib
import zlib
from typing import BinaryIO

from p2p_orchestrator.archive._limits import ArchiveLimits
from p2p_orchestrator.errors import ServiceInstallationError

__all__ = ["BoundedGunzip"]

READ_SIZE = 16 * 1024
_OUT_CHUNK = 64 * 1024
_GZIP_MAGIC = b"\x1f\x8b\x08"


class BoundedGunzip:
    """Decompress one gzip member from ``source``, never past the limits.

    Compressed bytes are counted, hashed and copied to ``copy_to`` exactly as
    they are read.  Decompression runs only as far as the reader asks, in
    bounded chunks, so a gzip bomb is stopped once ``max_uncompressed_bytes``
    have come out, having read only the compressed bytes needed for that.
    Exactly one gzip member is accepted: anything after it is refused.
    """

    def __init__(self, source: BinaryIO, limits: ArchiveLimits, copy_to: BinaryIO | None = None) -> None:
        self._source = source
        self._copy_to = copy_to
        self._limits = limits
        self._sha256 = hashlib.sha256()
        self._inflater = zlib.decompressobj(wbits=31)
        self._input = b""
        self._buffer = b""
        self._offset = 0
        self.compressed_bytes = 0
        self.uncompressed_bytes = 0
        self._consumed = 0
        self._started = False

    def hexdigest(self) -> str:
        """sha256 of every compressed byte read so far."""
        return self._sha256.hexdigest()

    @property
    def ended(self) -> bool:
        """True once the whole gzip stream has been decompressed (the data may be unread)."""
        return self._inflater.eof

    def read(self, size: int) -> bytes:
        """Return between 1 and ``size`` decompressed bytes; raise at the end of the data."""
        if self._offset == len(self._buffer) and not self._fill():
            raise ServiceInstallationError(
                "archive data ends too early (truncated)", code="truncated_archive"
            )
        return self._take(size)

    def _take(self, size: int) -> bytes:
        chunk = self._buffer[self._offset : self._offset + size]
        self._offset += len(chunk)
        self._consumed += len(chunk)
        if self._consumed > self._limits.max_uncompressed_bytes:
            raise self._too_large()
        return chunk

    def read_exact(self, size: int) -> bytes:
        """Return exactly ``size`` decompressed bytes, or raise ``truncated_archive``."""
        first = self.read(size)
        if len(first) == size:
            return first
        parts = [first]
        missing = size - len(first)
        while missing:
            chunk = self.read(missing)
            parts.append(chunk)
            missing -= len(chunk)
        return b"".join(parts)

    def at_end(self) -> bool:
        """True once all decompressed data has been consumed and the gzip stream ended."""
        return self._offset == len(self._buffer) and not self._fill()

    def finish(self) -> None:
        """Require that the decompressed data is all zeros up to a clean end of the gzip stream."""
        while not self.at_end():
            chunk = self._take(len(self._buffer) - self._offset)
            if chunk.count(0) != len(chunk):
                raise ServiceInstallationError(
                    "data after the tar end-of-archive marker", code="trailing_data"
                )

    def _fill(self) -> bool:
        """Decompress the next chunk into the buffer; False at the clean end of the stream."""
        while True:
            if self._inflater.eof:
                self._check_trailing()
                return False
            if not self._input:
                self._input = self._read_source()
                if not self._input:
                    raise ServiceInstallationError(
                        "gzip stream ends too early (truncated archive)", code="truncated_archive"
                    )
            # One byte past the limit is decompressed, so that reading it is what fails.
            room = self._limits.max_uncompressed_bytes + 1 - self.uncompressed_bytes
            if room <= 0:
                raise self._too_large()
            before = len(self._input)
            try:
                out = self._inflater.decompress(self._input, min(_OUT_CHUNK, room))
            except zlib.error as exc:
                raise ServiceInstallationError(f"corrupt gzip data: {exc}", code="corrupt_archive") from exc
            self._input = self._inflater.unconsumed_tail
            if out:
                self.uncompressed_bytes += len(out)
                self._buffer = out
                self._offset = 0
                return True
            if len(self._input) == before and not self._inflater.eof:
                raise ServiceInstallationError("corrupt gzip data: no progress", code="corrupt_archive")

    def _too_large(self) -> ServiceInstallationError:
        return ServiceInstallationError(
            f"archive expands to more than {self._limits.max_uncompressed_bytes} bytes",
            code="uncompressed_too_large",
        )

    def _check_trailing(self) -> None:
        if self._inflater.unused_data or self._input or self._read_source():
            raise ServiceInstallationError("trailing data after the gzip stream", code="trailing_data")

    def _read_source(self) -> bytes:
        """Read the next block of compressed bytes, checking the size limit and the gzip magic."""
        limit = self._limits.max_compressed_bytes
        try:
            data = self._source.read(min(READ_SIZE, limit - self.compressed_bytes + 1))
            if not self._started:
                # The magic check needs three bytes; a source may hand them out one at a time.
                while data and len(data) < len(_GZIP_MAGIC):
                    more = self._source.read(READ_SIZE)
                    if not more:
                        break
                    data += more
        except OSError as exc:
            raise ServiceInstallationError(f"cannot read the archive: {exc}", code="read_failed") from exc
        if data is None:
            raise ServiceInstallationError(
                "archive source returned no data (non-blocking?)", code="read_failed"
            )
        data = bytes(data)
        if not self._started:
            self._started = True
            if not data.startswith(_GZIP_MAGIC):
                raise ServiceInstallationError("not a gzip file (bad magic bytes)", code="not_gzip")
        self.compressed_bytes += len(data)
        if self.compressed_bytes > limit:
            raise ServiceInstallationError(f"archive is larger than {limit} bytes", code="archive_too_large")
        self._sha256.update(data)
        if self._copy_to is not None and data:
            try:
                self._copy_to.write(data)
            except OSError as exc:
                raise ServiceInstallationError(
                    f"cannot copy the archive: {exc}", code="write_failed"
                ) from exc
        return data
