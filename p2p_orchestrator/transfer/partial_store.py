"""All of a node's partial transfers, bounded in total size and in age.

Layout under the node home (the store of installed services keeps its own directories)::

    partial/<archive_hash>/   one PartialTransfer each (see partial.py)
    partial/.tmp-*            a transfer being created; removed on start-up if a crash left one

Policy:

* An archive over ``max_transfer_bytes``, or over the whole budget, is refused up front
  (``transfer_too_large``).
* Opening a new transfer first makes room: partial transfers idle for more than ``max_age``
  seconds go, then the least recently active ones until the new one fits in
  ``max_total_bytes`` (each counts its full size: its file fills up as chunks arrive).  Open
  transfers are never collected; if they alone leave no room: ``no_partial_space``.
* One open transfer per archive: a second :meth:`PartialStore.open` of the same hash is
  ``transfer_in_progress`` (a receiver adds senders to the transfer it has, it does not start
  another).
* Dedup: :meth:`PartialStore.has_archive` is true when the archive is in the service store's
  cache (``archives/<sha256>.tar.gz``) or a partial transfer of it is finished; opening such an
  archive gives a finished transfer, so the receiver asks for nothing.  A partial transfer of an
  archive the cache has is of no use: opening that archive removes it, and so do the start-up
  and every collection (a node killed between installing a received archive and discarding its
  transfer would otherwise keep a second copy until it expires).

Blocking and single-threaded, like :class:`~p2p_orchestrator.transfer.PartialTransfer`.  The
node calls :meth:`PartialStore.collect` now and then (e.g. hourly) besides the collection every
:meth:`PartialStore.open` does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from p2p_orchestrator._files import remove_tree
from p2p_orchestrator._patterns import HEX_SHA256

from ..errors import ServiceDistributionError
from ._constants import (
    DEFAULT_MAX_TRANSFER_BYTES,
    DEFAULT_PARTIAL_BUDGET,
    DEFAULT_PARTIAL_MAX_AGE,
    DEFAULT_SYNC_BYTES,
)
from ._layout import COMPLETE_FILE, DATA_FILE, LEDGER_FILE, MANIFEST_FILE
from .errors import (
    NO_PARTIAL_SPACE,
    PARTIAL_CORRUPT,
    TRANSFER_IN_PROGRESS,
    TRANSFER_TOO_LARGE,
    fail,
    fail_storage,
)
from .manifest import TransferManifest
from .partial import PartialTransfer

__all__ = ["PartialInfo", "PartialStore"]

log = logging.getLogger("p2p_orchestrator.transfer")

_FILES = (MANIFEST_FILE, DATA_FILE, LEDGER_FILE, COMPLETE_FILE)


@dataclass(frozen=True)
class PartialInfo:
    """One partial transfer on disk, as :meth:`PartialStore.entries` lists it."""

    archive_hash: str
    reserved_bytes: int
    """The archive's size: what the transfer occupies once complete (its budget share)."""
    last_active: float
    """When it last made progress (newest modification time of its files), as ``time.time()``."""
    complete: bool
    """Finished: the whole file was checked; it can be served and installed."""
    active: bool
    """Open right now (never collected)."""


class PartialStore:
    """The partial transfers under ``root`` (``<home>/partial``), within a size and age budget."""

    def __init__(
        self,
        root: Path,
        *,
        archive_cache: Path | None = None,
        max_total_bytes: int = DEFAULT_PARTIAL_BUDGET,
        max_age: float = DEFAULT_PARTIAL_MAX_AGE,
        max_transfer_bytes: int = DEFAULT_MAX_TRANSFER_BYTES,
        fsync: bool = True,
        sync_bytes: int = DEFAULT_SYNC_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``archive_cache`` is the service store's ``archives/`` directory (for dedup)."""
        self.root = root
        self.archive_cache = archive_cache
        self.max_total_bytes = max_total_bytes
        self.max_age = max_age
        self.max_transfer_bytes = max_transfer_bytes
        self._fsync = fsync
        self._sync_bytes = sync_bytes
        self._clock = clock
        self._active: dict[str, PartialTransfer] = {}
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        for leftover in root.glob(".tmp-*"):
            log.info("Removing %s, left by a partial transfer whose creation was interrupted", leftover)
            remove_tree(leftover)
        for info in self._entries():
            if self.cached_archive(info.archive_hash) is not None:
                log.info(
                    "Removing the partial transfer of %s (its archive is installed)", info.archive_hash[:12]
                )
                remove_tree(root / info.archive_hash)

    # -- dedup -------------------------------------------------------------------------------

    def cached_archive(self, archive_hash: str) -> Path | None:
        """The service store's cached copy of the archive, if it has one."""
        if self.archive_cache is None or HEX_SHA256.fullmatch(archive_hash) is None:
            return None
        path = self.archive_cache / f"{archive_hash}.tar.gz"
        return path if path.is_file() else None

    def archive_path(self, archive_hash: str) -> Path | None:
        """A complete, verified copy of the archive on this node (cache or finished transfer)."""
        cached = self.cached_archive(archive_hash)
        if cached is not None or HEX_SHA256.fullmatch(archive_hash) is None:
            return cached
        directory = self.root / archive_hash
        if (directory / COMPLETE_FILE).is_file():
            return directory / DATA_FILE
        return None

    def has_archive(self, archive_hash: str) -> bool:
        """Whether this node already holds the whole archive (nothing needs to be sent)."""
        return self.archive_path(archive_hash) is not None

    # -- transfers ---------------------------------------------------------------------------

    @property
    def open_transfers(self) -> dict[str, PartialTransfer]:
        """The transfers open right now, by archive hash (a copy)."""
        return dict(self._active)

    def open(self, manifest: TransferManifest) -> PartialTransfer:
        """The transfer of ``manifest``'s archive: resumed, created, or borrowed from the cache.

        Codes: ``transfer_too_large``, ``transfer_in_progress``, ``no_partial_space``,
        ``storage_failed``.  Close the result (or :meth:`~PartialTransfer.discard` it once the
        archive is installed) to release it.
        """
        archive_hash = manifest.archive_hash
        if archive_hash in self._active:
            fail(TRANSFER_IN_PROGRESS, f"a transfer of {archive_hash[:12]} is already open on this node")
        limit = min(self.max_transfer_bytes, self.max_total_bytes)
        if manifest.total_size > limit:
            fail(TRANSFER_TOO_LARGE, f"the archive has {manifest.total_size} bytes; the limit is {limit}")
        try:
            cached = self.cached_archive(archive_hash)
            if cached is not None:
                partial = PartialTransfer.borrow(cached, manifest, on_close=self._forget)
                remove_tree(self.root / archive_hash)  # a partial copy is no use any more
            else:
                partial = self._resume(manifest) or self._create(manifest)
        except OSError as exc:
            fail_storage(exc, f"cannot open the transfer of {archive_hash[:12]} in {self.root}: {exc}")
        self._active[archive_hash] = partial
        return partial

    def _resume(self, manifest: TransferManifest) -> PartialTransfer | None:
        directory = self.root / manifest.archive_hash
        if not directory.exists():
            return None
        try:
            return PartialTransfer.resume(
                directory, manifest, fsync=self._fsync, sync_bytes=self._sync_bytes, on_close=self._forget
            )
        except ServiceDistributionError as exc:
            if exc.code != PARTIAL_CORRUPT:
                raise
            log.warning("Starting the transfer of %s afresh: %s", manifest.archive_hash[:12], exc.message)
            remove_tree(directory)
            return None

    def _create(self, manifest: TransferManifest) -> PartialTransfer:
        self.collect(reserve=manifest.total_size)
        used = self.usage()
        if used + manifest.total_size > self.max_total_bytes:
            fail(
                NO_PARTIAL_SPACE,
                f"transfers in progress use {used} of {self.max_total_bytes} bytes; "
                f"{manifest.total_size} more do not fit (retry when one finishes)",
            )
        return PartialTransfer.create(
            self.root / manifest.archive_hash,
            manifest,
            fsync=self._fsync,
            sync_bytes=self._sync_bytes,
            on_close=self._forget,
        )

    def _forget(self, partial: PartialTransfer) -> None:
        if self._active.get(partial.archive_hash) is partial:
            del self._active[partial.archive_hash]

    # -- budget ------------------------------------------------------------------------------

    def entries(self) -> list[PartialInfo]:
        """Every partial transfer on disk, least recently active first."""
        try:
            return self._entries()
        except OSError as exc:
            fail_storage(exc, f"cannot list the partial transfers in {self.root}: {exc}")

    def _entries(self) -> list[PartialInfo]:
        found = []
        for directory in self.root.iterdir():
            name = directory.name
            if HEX_SHA256.fullmatch(name) is None or not directory.is_dir():
                continue
            stats = {}
            for file in _FILES:
                try:
                    stats[file] = (directory / file).stat()
                except FileNotFoundError:
                    continue
            data = stats.get(DATA_FILE)
            found.append(
                PartialInfo(
                    archive_hash=name,
                    reserved_bytes=data.st_size if data is not None else 0,
                    last_active=max((s.st_mtime for s in stats.values()), default=0.0),
                    complete=COMPLETE_FILE in stats,
                    active=name in self._active,
                )
            )
        found.sort(key=lambda info: (info.last_active, info.archive_hash))
        return found

    def usage(self) -> int:
        """Bytes reserved by all partial transfers on disk (each counts its archive's full size)."""
        return sum(info.reserved_bytes for info in self.entries())

    def collect(self, *, reserve: int = 0) -> list[str]:
        """Delete transfers of installed archives (the store's cache has them) and expired ones,
        then the least recently active until ``reserve`` more bytes fit.

        Returns the archive hashes removed.  Open transfers are never removed.
        """
        removed = []
        now = self._clock()
        entries = self.entries()
        used = sum(info.reserved_bytes for info in entries)
        for info in entries:
            if info.active:
                continue
            installed = self.cached_archive(info.archive_hash) is not None
            expired = now - info.last_active > self.max_age
            if not (installed or expired or used + reserve > self.max_total_bytes):
                continue
            if installed:
                reason = "its archive is installed"
            else:
                reason = "idle too long" if expired else "the partial store is full"
            log.info("Removing the partial transfer of %s (%s)", info.archive_hash[:12], reason)
            self._remove_tree(self.root / info.archive_hash)
            used -= info.reserved_bytes
            removed.append(info.archive_hash)
        return removed

    def remove(self, archive_hash: str) -> bool:
        """Delete the (closed) partial transfer of ``archive_hash``; return whether there was one."""
        if archive_hash in self._active:
            fail(TRANSFER_IN_PROGRESS, f"the transfer of {archive_hash[:12]} is open; discard it instead")
        directory = self.root / archive_hash
        if HEX_SHA256.fullmatch(archive_hash) is None or not directory.exists():
            return False
        self._remove_tree(directory)
        return True

    @staticmethod
    def _remove_tree(path: Path) -> None:
        try:
            remove_tree(path)
        except OSError as exc:
            fail_storage(exc, f"cannot delete {path}: {exc}")
