"""A receiver's transfer in progress, kept on disk so that it survives a dropped connection or a
restart and resumes from the chunks already verified: the
:class:`~p2p_orchestrator.transfer.ChunkStore` a node gives its
:class:`~p2p_orchestrator.transfer.TransferReceiver`.

One directory per archive (the :class:`~p2p_orchestrator.transfer.PartialStore` keeps them
under ``<home>/partial/<archive_hash>/``)::

    manifest   the manifest, CBOR (its wire form)
    data       the archive, a sparse file of total_size bytes; chunk i at i * chunk_size
    ledger     8-byte magic, then one 4-byte big-endian chunk index per verified chunk
    complete   empty marker: the whole file's sha256 was checked (see finish())

Rules, and why they make every crash safe:

* A chunk is checked against the manifest (length and sha256) *before* it is written -- by
  :meth:`~PartialTransfer.write_chunk`, or by the receiver before it calls
  :meth:`~PartialTransfer.write_verified_chunk`; a wrong chunk raises and leaves the file
  untouched.
* Its index is appended to the ledger only after its bytes were written.  Data and ledger are
  flushed to disk together every ``sync_bytes`` newly verified bytes and on :meth:`sync`/
  :meth:`close`, data first, so a power loss forgets at most the last few MiB of progress.
* The ledger is a claim, not the truth: reopening re-hashes every chunk it lists and keeps only
  those that still match (a torn last record, a record whose data never reached the disk, or a
  ledger written under another chunking all cost a re-download, never a corrupt archive).
  Re-hashing reads only the verified part, at ~1 GB/s.
* Nothing is handed over before :meth:`finish` has hashed the whole file against the
  ``archive_hash``.  The chunks that arrive in order are hashed for it as they are written
  (from the caller's buffer, where the bytes already are), so :meth:`finish` reads back only
  what came out of order or was written before this object opened the transfer.

All methods are blocking file I/O (call them from a worker thread in async code) and are not
thread-safe: one caller at a time.  Chunks go from the caller's buffer to the file; no more
than one chunk is ever held in memory here.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from p2p_orchestrator._files import remove_tree

from ._constants import DEFAULT_SYNC_BYTES
from ._fs import pread_exact, pwrite_all, write_file
from ._layout import (
    COMPLETE_FILE,
    DATA_FILE,
    LEDGER_FILE,
    RECORD_BYTES,
    create_layout,
    hash_file,
    recover_layout,
)
from .bitfield import Bitfield
from .errors import (
    ARCHIVE_HASH_MISMATCH,
    CHUNK_UNAVAILABLE,
    TRANSFER_INCOMPLETE,
    fail,
    fail_storage,
)
from .manifest import TransferManifest

__all__ = ["PartialTransfer"]


class PartialTransfer:
    """One archive being received: verified chunks on disk, and the set of them in memory.

    A :class:`~p2p_orchestrator.transfer.ChunkStore` (what a receiver writes to).

    Get one from :meth:`create`, :meth:`resume` or :meth:`borrow` (or, normally, from
    :meth:`PartialStore.open <p2p_orchestrator.transfer.PartialStore.open>`, which picks).
    """

    def __init__(
        self,
        manifest: TransferManifest,
        data_path: Path,
        verified: Bitfield,
        *,
        directory: Path | None,
        finished: bool,
        fsync: bool,
        sync_bytes: int,
        on_close: Callable[[PartialTransfer], None] | None,
    ) -> None:
        """Internal: use :meth:`create`, :meth:`resume` or :meth:`borrow`."""
        self.manifest = manifest
        self.directory = directory
        self.data_path = data_path
        self._verified = verified
        self._verified_bytes = sum(manifest.chunk_length(i) for i in verified)
        self._finished = finished
        self._fsync = fsync
        self._sync_bytes = sync_bytes
        self._unsynced = 0
        self._on_close = on_close
        self._closed = False
        self._digest = hashlib.sha256()
        self._digested = 0
        """The file's first ``_digested`` bytes are in ``_digest`` (see :meth:`finish`)."""
        writable = directory is not None and not finished
        try:
            self._data_fd = os.open(data_path, os.O_RDWR if writable else os.O_RDONLY)
        except OSError as exc:
            fail_storage(exc, f"cannot open {data_path}: {exc.strerror or exc}")
        self._ledger_fd = -1
        if writable and directory is not None:
            try:
                self._ledger_fd = os.open(directory / LEDGER_FILE, os.O_WRONLY | os.O_APPEND)
            except OSError as exc:
                os.close(self._data_fd)
                fail_storage(exc, f"cannot open the ledger in {directory}: {exc.strerror or exc}")

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        directory: Path,
        manifest: TransferManifest,
        *,
        fsync: bool = True,
        sync_bytes: int = DEFAULT_SYNC_BYTES,
        on_close: Callable[[PartialTransfer], None] | None = None,
    ) -> PartialTransfer:
        """Start a new, empty partial transfer in ``directory`` (which must not exist).

        The directory appears whole or not at all: it is built under a temporary name next to
        it and renamed into place.
        """
        create_layout(directory, manifest, fsync=fsync)
        verified = Bitfield(manifest.chunk_count)
        return cls(
            manifest,
            directory / DATA_FILE,
            verified,
            directory=directory,
            finished=False,
            fsync=fsync,
            sync_bytes=sync_bytes,
            on_close=on_close,
        )

    @classmethod
    def resume(
        cls,
        directory: Path,
        manifest: TransferManifest,
        *,
        fsync: bool = True,
        sync_bytes: int = DEFAULT_SYNC_BYTES,
        on_close: Callable[[PartialTransfer], None] | None = None,
    ) -> PartialTransfer:
        """Reopen the partial transfer in ``directory`` for ``manifest``, keeping what still verifies.

        The stored manifest may chunk the same archive differently (another sender chose
        another chunk size): every new chunk lying wholly inside verified old chunks is
        re-hashed under the new manifest and kept.  ``partial_corrupt`` if the directory is
        unreadable or holds another archive; the caller then deletes it and starts afresh.
        """
        verified, finished = recover_layout(directory, manifest, fsync=fsync)
        return cls(
            manifest,
            directory / DATA_FILE,
            verified,
            directory=directory,
            finished=finished,
            fsync=fsync,
            sync_bytes=sync_bytes,
            on_close=on_close,
        )

    @classmethod
    def borrow(
        cls,
        archive_file: Path,
        manifest: TransferManifest,
        *,
        on_close: Callable[[PartialTransfer], None] | None = None,
    ) -> PartialTransfer:
        """A finished, read-only transfer backed by a file this node already has (dedup).

        ``archive_file`` is trusted to be the archive (e.g. the store's content-addressed cache,
        which only holds archives it verified); :meth:`discard` never deletes it.
        """
        return cls(
            manifest,
            archive_file,
            Bitfield.full(manifest.chunk_count),
            directory=None,
            finished=True,
            fsync=False,
            sync_bytes=DEFAULT_SYNC_BYTES,
            on_close=on_close,
        )

    # -- state -------------------------------------------------------------------------------

    @property
    def archive_hash(self) -> str:
        return self.manifest.archive_hash

    def have(self) -> Bitfield:
        """A copy of the set of verified chunks."""
        return self._verified.copy()

    def has_chunk(self, index: int) -> bool:
        """Whether chunk ``index`` is verified on disk."""
        return index in self._verified

    def missing(self) -> list[int]:
        """The chunks still lacking, in increasing order."""
        return self._verified.missing()

    @property
    def verified_bytes(self) -> int:
        """Bytes of verified chunks on disk."""
        return self._verified_bytes

    @property
    def is_complete(self) -> bool:
        """Every chunk is verified (the whole file is checked by :meth:`finish`)."""
        return self._verified.is_full

    @property
    def is_finished(self) -> bool:
        """:meth:`finish` succeeded (or the transfer was borrowed from a complete archive)."""
        return self._finished

    @property
    def is_borrowed(self) -> bool:
        """Backed by an archive the node already had (see :meth:`borrow`)."""
        return self.directory is None

    @property
    def closed(self) -> bool:
        return self._closed

    # -- chunks ------------------------------------------------------------------------------

    def write_chunk(self, index: int, data: bytes) -> bool:
        """Check ``data`` against the manifest, then store it; return whether it was new.

        Raises (and writes nothing) with ``chunk_out_of_range``, ``chunk_size_mismatch`` or
        ``chunk_hash_mismatch``; ``storage_failed`` if the disk refuses.  A chunk already
        verified is checked again but not rewritten (the answer is ``False``).
        """
        self._check_open()
        self.manifest.check_chunk(index, data)
        if index in self._verified:
            return False
        self.write_verified_chunk(index, data)
        return True

    def write_verified_chunk(self, index: int, data: bytes) -> None:
        """Store chunk ``index``, which the caller checked against the manifest (a receiver does).

        ``data`` is trusted: not hashed again.  A chunk already verified is not rewritten.
        ``storage_failed`` if the disk refuses.
        """
        self._check_open()
        if index in self._verified:
            return
        offset = self.manifest.chunk_offset(index)
        try:
            pwrite_all(self._data_fd, data, offset)
            os.write(self._ledger_fd, index.to_bytes(RECORD_BYTES, "big"))
        except OSError as exc:
            fail_storage(exc, f"cannot write chunk {index} to {self.data_path}: {exc.strerror or exc}")
        if offset == self._digested:  # the next bytes of the file: hashed here, not read back
            self._digest.update(data)
            self._digested += len(data)
        self._verified.add(index)
        self._verified_bytes += len(data)
        self._unsynced += len(data)
        if self._unsynced >= self._sync_bytes:
            self.sync()

    def read_chunk(self, index: int) -> bytes:
        """The bytes of verified chunk ``index`` (to serve it to another peer).

        ``chunk_unavailable`` for a chunk not verified here; ``chunk_out_of_range`` past the end.
        """
        self._check_open()
        length = self.manifest.chunk_length(index)
        if index not in self._verified:
            fail(CHUNK_UNAVAILABLE, f"chunk {index} of {self.archive_hash[:12]} is not verified here")
        try:
            return pread_exact(self._data_fd, length, self.manifest.chunk_offset(index))
        except OSError as exc:
            fail_storage(exc, f"cannot read chunk {index} from {self.data_path}: {exc.strerror or exc}")

    def sync(self) -> None:
        """Flush the data, then the ledger, to disk (a no-op with ``fsync=False``)."""
        self._check_open()
        self._unsynced = 0
        if not self._fsync or self._ledger_fd < 0:
            return
        try:
            os.fdatasync(self._data_fd)
            os.fsync(self._ledger_fd)
        except OSError as exc:
            fail_storage(exc, f"cannot flush {self.data_path}: {exc.strerror or exc}")

    # -- the end -----------------------------------------------------------------------------

    def finish(self) -> Path:
        """Check the whole file against ``archive_hash`` and return its path (blocking, one pass).

        ``transfer_incomplete`` while chunks are missing.  ``archive_hash_mismatch`` if every
        chunk matched but the file does not: the manifest itself lied, nothing is worth keeping,
        and the partial transfer is discarded.  The file stays where it is; the caller reads it
        (e.g. ``ServiceStore.stage``) and then calls :meth:`discard`.
        """
        self._check_open()
        if self._finished:
            return self.data_path
        if not self.is_complete:
            fail(TRANSFER_INCOMPLETE, f"{len(self.missing())} chunks of {self.archive_hash[:12]} are missing")
        self.sync()
        try:
            actual = hash_file(self._data_fd, self.manifest.total_size, self._digest.copy(), self._digested)
        except OSError as exc:
            fail_storage(exc, f"cannot read {self.data_path}: {exc.strerror or exc}")
        if actual != self.manifest.archive_hash:
            self.discard()
            fail(
                ARCHIVE_HASH_MISMATCH,
                f"every chunk matched the manifest but the archive's sha256 is {actual}, "
                f"not {self.manifest.archive_hash}: the manifest describes another file",
            )
        assert self.directory is not None  # borrowed transfers are finished from the start
        try:
            write_file(self.directory / COMPLETE_FILE, b"", fsync=self._fsync)
        except OSError as exc:
            fail_storage(exc, f"cannot mark {self.directory} complete: {exc.strerror or exc}")
        self._finished = True
        return self.data_path

    def close(self) -> None:
        """Flush and release the files; the transfer stays on disk to be resumed.  Idempotent."""
        if self._closed:
            return
        try:
            if not self._finished:
                self.sync()
        finally:
            self._closed = True
            os.close(self._data_fd)
            if self._ledger_fd >= 0:
                os.close(self._ledger_fd)
            if self._on_close is not None:
                self._on_close(self)

    def discard(self) -> None:
        """Close and delete the partial transfer (never a borrowed archive)."""
        self._fsync = False  # no point flushing what is about to be deleted
        self.close()
        if self.directory is not None:
            try:
                remove_tree(self.directory)
            except OSError as exc:
                fail_storage(exc, f"cannot delete {self.directory}: {exc.strerror or exc}")

    def __enter__(self) -> PartialTransfer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"the partial transfer of {self.archive_hash[:12]} is closed")

    def __repr__(self) -> str:
        return (
            f"PartialTransfer({self.archive_hash[:12]}, {self._verified.count}/{self.manifest.chunk_count} "
            f"chunks{', finished' if self._finished else ''})"
        )
