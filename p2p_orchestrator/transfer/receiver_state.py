"""The states a :class:`~p2p_orchestrator.transfer.TransferReceiver` reports: its own, and per source."""

from __future__ import annotations

import enum

__all__ = ["Awaiting", "ReceiverState"]


class ReceiverState(enum.Enum):
    """``RECEIVING`` -> ``COMPLETE`` (all chunks verified) -> ``FINISHED`` (whole file checked) ->
    ``CLOSED`` (results sent); ``FAILED`` after a local failure or a lying manifest."""

    RECEIVING = "receiving"
    COMPLETE = "complete"
    FINISHED = "finished"
    CLOSED = "closed"
    FAILED = "failed"


class Awaiting(enum.Enum):
    """What the receiver waits for from one source (the adapter puts deadlines on it)."""

    OFFER = "offer"
    """Nothing yet: its first message must be an offer."""
    HAVE = "have"
    """Its offer arrived; the have (what it holds) is due."""
    CHUNKS = "chunks"
    """Chunks were asked of it and are undelivered (see :meth:`TransferReceiver.in_flight`)."""
    NOTHING = "nothing"
    """Nothing is owed: it holds nothing needed, or the transfer is complete."""
