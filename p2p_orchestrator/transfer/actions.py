"""What a :class:`~p2p_orchestrator.transfer.TransferReceiver` asks its adapter to do or know.

``receive()`` and friends return a list of these, in order.  Only :class:`Send` needs doing;
the others are news (for progress events, for announcing chunks to peers, for reporting a
lying peer, and for moving on to install).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from ..errors import OrchestratorError, ServiceDistributionError
from .messages import TransferMessage
from .schedule import SourceId

__all__ = ["Action", "ChunkRejected", "ChunkStored", "Send", "SourceEnded", "TransferComplete"]


@dataclass(frozen=True, slots=True)
class Send:
    """Write ``message`` on the stream of ``source``."""

    source: SourceId
    message: TransferMessage


@dataclass(frozen=True, slots=True)
class ChunkStored:
    """Chunk ``index`` (``size`` bytes) from ``source`` was verified and written."""

    source: SourceId
    index: int
    size: int


@dataclass(frozen=True, slots=True)
class ChunkRejected:
    """``source`` sent chunk ``index`` corrupt (``chunk_hash_mismatch`` or ``chunk_size_mismatch``).

    Nothing was written; the chunk is asked for again.  Past the receiver's tolerance the
    source is dropped with ``too_many_corrupt_chunks`` instead.
    """

    source: SourceId
    index: int
    error: ServiceDistributionError


@dataclass(frozen=True, slots=True)
class SourceEnded:
    """``source`` ended its side: ``error`` is ``None`` after ``done``, the reason after ``abort``.

    The receiver has already forgotten it; close its stream.
    """

    source: SourceId
    error: OrchestratorError | None


@dataclass(frozen=True, slots=True)
class TransferComplete:
    """Every chunk is verified: call :meth:`TransferReceiver.finish`, then install or keep it."""


Action: TypeAlias = Send | ChunkStored | ChunkRejected | SourceEnded | TransferComplete
"""Anything a receiver returns."""
