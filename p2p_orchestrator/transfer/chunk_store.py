"""Where a :class:`~p2p_orchestrator.transfer.TransferReceiver` keeps the chunks it verified.

The state machines do no I/O of their own: the sender is given ``read_chunk`` (a way to read
chunks), the receiver a :class:`ChunkStore` (a place to write them).  The receiver checks every
chunk against the manifest before it hands it over, so a store only keeps what it is given,
says what it holds, and checks the whole archive at the end.

:class:`~p2p_orchestrator.transfer.PartialTransfer` is the store of a node: a sparse file plus a
ledger that survives restarts, so a later receiver over the same store resumes.  Anything else
with these few members will do -- e.g. a few bytes in memory, and the receiver runs with no
disk at all (``tests/transfer/test_transfer_chunk_store.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from .bitfield import Bitfield
from .manifest import TransferManifest

__all__ = ["ChunkStore"]


class ChunkStore(Protocol):
    """The storage of one archive being received (see the module docstring).

    Calls come one at a time and may block (a :class:`PartialTransfer` does file I/O: the adapter
    runs the receiver's chunk handling in a worker thread).  A local failure -- the disk refuses
    -- raises ``ServiceDistributionError(code="storage_failed")``: the receiver then fails
    (``FAILED``), for every source, instead of blaming the source whose chunk it was.
    """

    @property
    def manifest(self) -> TransferManifest:
        """The archive the chunks are of."""

    @property
    def closed(self) -> bool:
        """A closed store takes no more chunks (a receiver refuses to start on one)."""

    @property
    def is_finished(self) -> bool:
        """:meth:`finish` succeeded, or the store held the whole, checked archive from the start."""

    def have(self) -> Bitfield:
        """The chunks held (a copy); a receiver reads it once, when it starts."""

    def write_verified_chunk(self, index: int, data: bytes) -> None:
        """Keep chunk ``index``, whose ``data`` the receiver checked against the manifest."""

    def finish(self) -> Path:
        """Check the whole archive against the manifest's ``archive_hash``; return where it is.

        Called once every chunk is held; once finished, it returns the same path at once.
        ``archive_hash_mismatch`` if the chunks all matched but the archive does not (the
        manifest lied).
        """
