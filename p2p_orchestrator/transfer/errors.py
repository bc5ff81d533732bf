"""The stable error codes of the transfer, all carried by :class:`ServiceDistributionError`.

Two kinds of refusal come out of this package, and an adapter treats them alike (it tells the
peer why, then ends that peer's stream):

* :class:`~p2p_orchestrator.errors.ProtocolError` -- the bytes are not transfer messages, or a
  message arrived in a state that does not allow it.  Codes are those of the RPC wire codec
  (``frame_too_large``, ``bad_cbor``..., ``bad_message``, ``unexpected_message``).
* :class:`~p2p_orchestrator.errors.ServiceDistributionError` -- well-formed messages that lie
  about the archive, break the transfer's limits, or a local failure.  Codes are below.

Codes are stable: programs match on them.  New codes may be added; existing ones keep their
meaning.
"""

from __future__ import annotations

from typing import Final, NoReturn

from ..errors import ServiceDistributionError

__all__ = [
    "ARCHIVE_HASH_MISMATCH",
    "BAD_BITFIELD",
    "BAD_MANIFEST",
    "CHUNK_HASH_MISMATCH",
    "CHUNK_OUT_OF_RANGE",
    "CHUNK_SIZE_MISMATCH",
    "CHUNK_UNAVAILABLE",
    "CHUNKS_PENDING",
    "DUPLICATE_WANT",
    "ERROR_CODES",
    "HAVE_REGRESSED",
    "MANIFEST_MISMATCH",
    "NO_PARTIAL_SPACE",
    "PARTIAL_CORRUPT",
    "PREMATURE_DONE",
    "SOURCE_CHANGED",
    "STORAGE_FAILED",
    "TOO_MANY_CORRUPT_CHUNKS",
    "TOO_MANY_WANTS",
    "TRANSFER_FAILED",
    "TRANSFER_INCOMPLETE",
    "TRANSFER_IN_PROGRESS",
    "TRANSFER_TOO_LARGE",
    "UNEXPECTED_CHUNK",
    "fail",
    "fail_storage",
]

# -- the archive's description -------------------------------------------------------------
BAD_MANIFEST: Final = "bad_manifest"
"""A manifest inconsistent with itself (sizes, count, root) or malformed."""
MANIFEST_MISMATCH: Final = "manifest_mismatch"
"""A sender offered a manifest other than the one this transfer is for."""
TRANSFER_TOO_LARGE: Final = "transfer_too_large"
"""The archive is over the configured size limit (or over the partial store's whole budget)."""
BAD_BITFIELD: Final = "bad_bitfield"
"""A ``have`` bitfield of the wrong length or with bits set past the last chunk."""
HAVE_REGRESSED: Final = "have_regressed"
"""A ``have`` update that drops chunks announced before (verified chunks are never lost)."""

# -- chunks a sender sends -------------------------------------------------------------------
CHUNK_OUT_OF_RANGE: Final = "chunk_out_of_range"
"""A chunk index (in a ``chunk``, ``want`` or ``cancel``) past the manifest's last chunk."""
UNEXPECTED_CHUNK: Final = "unexpected_chunk"
"""A chunk the receiver did not ask this sender for (never asked, or already received)."""
CHUNK_SIZE_MISMATCH: Final = "chunk_size_mismatch"
"""A chunk whose length differs from the manifest's; refused and asked again, like a bad hash."""
CHUNK_HASH_MISMATCH: Final = "chunk_hash_mismatch"
"""A chunk whose sha256 differs from the manifest's; refused (not written) and asked again."""
TOO_MANY_CORRUPT_CHUNKS: Final = "too_many_corrupt_chunks"
"""A sender sent more corrupt chunks than the receiver tolerates; it is dropped."""
PREMATURE_DONE: Final = "premature_done"
"""A sender said ``done`` while it still owed chunks it had been asked for."""
ARCHIVE_HASH_MISMATCH: Final = "archive_hash_mismatch"
"""Every chunk matched, but the whole file's sha256 is not the manifest's: the manifest lied."""

# -- requests a receiver sends ---------------------------------------------------------------
CHUNK_UNAVAILABLE: Final = "chunk_unavailable"
"""A ``want`` (or a read) for a chunk the sender does not hold."""
DUPLICATE_WANT: Final = "duplicate_want"
"""A ``want`` for a chunk already asked for and not yet sent."""
TOO_MANY_WANTS: Final = "too_many_wants"
"""More chunks asked for at once than the sender accepts (``MAX_IN_FLIGHT``)."""

# -- local state -----------------------------------------------------------------------------
TRANSFER_INCOMPLETE: Final = "transfer_incomplete"
"""Finishing a transfer that still lacks chunks."""
TRANSFER_IN_PROGRESS: Final = "transfer_in_progress"
"""A transfer of this archive is already open on this node; add the sender to that one."""
NO_PARTIAL_SPACE: Final = "no_partial_space"
"""The partial store's budget is taken by transfers in progress; retry later."""
PARTIAL_CORRUPT: Final = "partial_corrupt"
"""A partial transfer's files on disk are unreadable; the store starts it afresh."""
STORAGE_FAILED: Final = "storage_failed"
"""Reading or writing the local disk failed (the ``OSError`` is the ``__cause__``)."""
SOURCE_CHANGED: Final = "source_changed"
"""The sender's own file no longer matches its manifest (changed under it)."""
CHUNKS_PENDING: Final = "chunks_pending"
"""A sender tried to end while chunks it was asked for are still unsent."""
TRANSFER_FAILED: Final = "transfer_failed"
"""A failure a receiver reports with no more specific code."""

ERROR_CODES: Final = frozenset(
    {
        BAD_MANIFEST,
        MANIFEST_MISMATCH,
        TRANSFER_TOO_LARGE,
        BAD_BITFIELD,
        HAVE_REGRESSED,
        CHUNK_OUT_OF_RANGE,
        UNEXPECTED_CHUNK,
        CHUNK_SIZE_MISMATCH,
        CHUNK_HASH_MISMATCH,
        TOO_MANY_CORRUPT_CHUNKS,
        PREMATURE_DONE,
        ARCHIVE_HASH_MISMATCH,
        CHUNK_UNAVAILABLE,
        DUPLICATE_WANT,
        TOO_MANY_WANTS,
        TRANSFER_INCOMPLETE,
        TRANSFER_IN_PROGRESS,
        NO_PARTIAL_SPACE,
        PARTIAL_CORRUPT,
        STORAGE_FAILED,
        SOURCE_CHANGED,
        CHUNKS_PENDING,
        TRANSFER_FAILED,
    }
)
"""Every code this package raises :class:`ServiceDistributionError` with."""


def fail(code: str, message: str) -> NoReturn:
    """Raise ``ServiceDistributionError(message, code=code)``."""
    raise ServiceDistributionError(message, code=code)


def fail_storage(exc: OSError, message: str) -> NoReturn:
    """Raise ``ServiceDistributionError(code="storage_failed")`` caused by ``exc``."""
    raise ServiceDistributionError(message, code=STORAGE_FAILED) from exc
