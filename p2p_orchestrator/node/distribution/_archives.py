"""The archives a node serves: their manifests, built once, and chunk reads from an open file.

A sender needs the archive's :class:`~p2p_orchestrator.transfer.TransferManifest` (one sha256
pass over the file) for every transfer, and every target of a distribution gets the same one,
so :class:`ManifestCache` builds it once per file (keyed by path, size and modification time;
the store's cache is content-addressed, so a path's content never changes under its name) in a
worker thread, and keeps the most recent few.  :class:`ArchiveFile` holds the file open for the
whole distribution -- an upgrade that prunes the cached archive meanwhile does not pull it from
under the transfers -- and reads chunks with ``pread`` (blocking: call it from worker threads,
as :class:`~p2p_orchestrator.node.distribution._send.SendSession` does).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Hashable
from pathlib import Path
from types import TracebackType

import trio

from p2p_orchestrator.errors import ServiceDistributionError
from p2p_orchestrator.transfer import TransferManifest, build_manifest

__all__ = ["ArchiveFile", "ManifestCache"]


class ArchiveFile:
    """An archive file held open; :meth:`read_chunk` serves a manifest's chunks from it."""

    def __init__(self, path: Path, manifest: TransferManifest) -> None:
        self.path = path
        self.manifest = manifest
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise ServiceDistributionError(
                f"cannot open the archive {path}: {exc.strerror or exc}", code="storage_failed"
            ) from exc
        size = os.fstat(self._fd).st_size
        if size != manifest.total_size:
            os.close(self._fd)
            raise ServiceDistributionError(
                f"{path} has {size} bytes; its manifest says {manifest.total_size}", code="source_changed"
            )

    def read_chunk(self, index: int) -> bytes:
        """The bytes of chunk ``index`` (blocking; ``OSError`` if the disk fails)."""
        length = self.manifest.chunk_length(index)
        offset = self.manifest.chunk_offset(index)
        data = os.pread(self._fd, length, offset)
        while len(data) < length:  # regular files return short reads only at EOF
            more = os.pread(self._fd, length - len(data), offset + len(data))
            if not more:
                break
            data += more
        return data

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> ArchiveFile:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class ManifestCache:
    """Manifests of archive files, built once each (see the module docstring)."""

    def __init__(self, *, max_archive_bytes: int, size: int = 32) -> None:
        self.max_archive_bytes = max_archive_bytes
        self._size = size
        self._cache: OrderedDict[Hashable, TransferManifest] = OrderedDict()
        self._building: dict[Hashable, trio.Lock] = {}

    async def manifest_of(self, path: Path, chunk_size: int) -> TransferManifest:
        """The manifest of the file at ``path`` with ``chunk_size`` chunks (built in a worker thread)."""
        try:
            stat = await trio.Path(path).stat()
        except OSError as exc:
            raise ServiceDistributionError(
                f"cannot read the archive {path}: {exc.strerror or exc}", code="storage_failed"
            ) from exc
        key = (str(path), stat.st_size, stat.st_mtime_ns, chunk_size)
        lock = self._building.setdefault(key, trio.Lock())
        try:
            async with lock:  # concurrent callers of one archive share one build
                manifest = self._cache.get(key)
                if manifest is None:
                    manifest = await trio.to_thread.run_sync(
                        lambda: build_manifest(path, chunk_size, max_total_bytes=self.max_archive_bytes)
                    )
                    self._cache[key] = manifest
                    while len(self._cache) > self._size:
                        self._cache.popitem(last=False)
                self._cache.move_to_end(key)
                return manifest
        finally:
            if not lock.statistics().tasks_waiting and not lock.locked():
                self._building.pop(key, None)
