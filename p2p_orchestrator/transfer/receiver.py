"""The receiving side of a transfer: a sans-IO state machine over one or more senders.

The receiver talks to any number of senders ("sources"; one for a push from an origin, several
in a swarm).  It does no I/O of its own: it checks every chunk against the manifest and hands
the good ones to the :class:`~p2p_orchestrator.transfer.ChunkStore` it is given -- a node's
:class:`~p2p_orchestrator.transfer.PartialTransfer` on disk, or anything with the same few
members (in memory, say) -- as the sender is given ``read_chunk``.  The adapter gives it each
message with the source it came from, and does what the returned actions say::

    receiver = TransferReceiver(partial)      # partial: a ChunkStore
    actions = receiver.receive(peer, offer)   # the first message of a source is its offer
    # ... Send(peer, Have(...)), then after the source's Have: Send(peer, Want(...)) ...

Per source, the messages must come in this order (anything else is ``unexpected_message``)::

    offer  have  { chunk | have }*  [ done | abort ]

and the receiver answers ``have`` (what it already holds -- all of it when it has the archive,
so the source sends nothing), then ``want``s, a few chunks at a time (``window``), as chunks
arrive, ``cancel`` when an endgame duplicate is no longer needed, and finally ``have`` (all) to
every source when the last chunk is verified, and a ``result`` from :meth:`conclude`.

What it refuses (the source is dropped and the error raised; nothing unverified reaches the store):

* a manifest other than the transfer's (``manifest_mismatch``);
* a chunk index past the end (``chunk_out_of_range``), a chunk it did not ask that source for,
  or already received (``unexpected_chunk``) -- chunks asked for may arrive in any order;
* a chunk of the wrong length (``chunk_size_mismatch``) or hash (``chunk_hash_mismatch``): not
  fatal at first -- reported as :class:`ChunkRejected` and asked again -- but the source is
  dropped at its ``max_corrupt + 1``-th (``too_many_corrupt_chunks``);
* ``done`` while chunks asked of the source are undelivered (``premature_done``), a ``have``
  that is malformed (``bad_bitfield``) or shrinks (``have_regressed``), and messages only a
  sender receives or out of order (``ProtocolError``, ``unexpected_message``).

A dropped source is banned: any later message from it raises again.  A failure of the store (a
local disk error: ``storage_failed``) is raised too but leaves the receiver ``FAILED``.  Stalls
are the adapter's business: :meth:`waiting_for` says what each source owes; on a deadline, or on
EOF, call :meth:`source_closed` -- its chunks go back to the pool and the store keeps every
verified chunk, so a new receiver over the same store (a partial transfer) later resumes where
this one stopped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import OrchestratorError, ProtocolError, ServiceDistributionError
from ._constants import DEFAULT_MAX_CORRUPT, DEFAULT_WINDOW, MAX_IN_FLIGHT
from .actions import Action, ChunkRejected, ChunkStored, Send, SourceEnded, TransferComplete
from .bitfield import Bitfield
from .chunk_store import ChunkStore
from .errors import (
    CHUNK_OUT_OF_RANGE,
    HAVE_REGRESSED,
    MANIFEST_MISMATCH,
    PREMATURE_DONE,
    STORAGE_FAILED,
    TOO_MANY_CORRUPT_CHUNKS,
    TRANSFER_INCOMPLETE,
    UNEXPECTED_CHUNK,
    fail,
)
from .messages import Abort, CancelChunks, Chunk, Done, Have, Offer, Result, TransferMessage, Want
from .receiver_state import Awaiting, ReceiverState
from .schedule import ChunkScheduler, SourceId
from .swarm_schedule import SwarmPlan, SwarmScheduler

__all__ = ["Awaiting", "ReceiverState", "TransferReceiver"]


@dataclass
class _SourceRecord:
    """What the receiver knows of one source: its offer and have, its corrupt chunks so far, and
    the chunks cancelled of it that may still arrive (crossed the cancel on the wire)."""

    offer: Offer
    have: Bitfield | None = None
    corrupt: int = 0
    cancelled: set[int] = field(default_factory=set)


def _unexpected(message: str) -> ProtocolError:
    return ProtocolError(message, code="unexpected_message")


class TransferReceiver:
    """Receive one archive into ``partial`` from any number of sources (see the module docstring).

    ``partial``: what is held already, and where verified chunks go (a :class:`ChunkStore`,
    normally a :class:`~p2p_orchestrator.transfer.PartialTransfer`).  ``window``: chunks asked of
    each source at once (1..``MAX_IN_FLIGHT``).  ``max_corrupt``: corrupt chunks tolerated per
    source.  ``endgame``: when no unrequested chunk is left, ask a second source for chunks in
    flight elsewhere and cancel the loser.  ``plan``: a swarm target -- the origin only for the
    plan's chunks, the other targets for the rest, rarest first (:class:`SwarmScheduler`);
    ``rarest_first``: that order without a plan.
    """

    def __init__(
        self,
        partial: ChunkStore,
        *,
        window: int = DEFAULT_WINDOW,
        max_corrupt: int = DEFAULT_MAX_CORRUPT,
        endgame: bool = True,
        plan: SwarmPlan | None = None,
        rarest_first: bool = False,
    ) -> None:
        if partial.closed:
            raise ValueError("the chunk store is closed")
        if type(window) is not int or not 1 <= window <= MAX_IN_FLIGHT:
            raise ValueError(f"window must be an int in 1..{MAX_IN_FLIGHT}, got {window!r}")
        have, count = partial.have(), partial.manifest.chunk_count
        if have.size != count:
            raise ValueError(f"the store's have covers {have.size} chunks; the manifest has {count}")
        self.partial = partial
        self.manifest = partial.manifest
        self._have = have  # what the store holds: read once, then kept up to date here
        self._verified_bytes = sum(self.manifest.chunk_length(i) for i in have)
        self._max_corrupt = max_corrupt
        self._sources: dict[SourceId, _SourceRecord] = {}
        self._banned: set[SourceId] = set()
        self._bytes_from: dict[SourceId, int] = {}
        self.bytes_cancelled = 0
        """Bytes of chunks that arrived after their cancel (endgame duplicates): dropped unread."""
        self._swarm = plan is not None or rarest_first
        needed = have.missing()
        self._scheduler = (
            SwarmScheduler(needed, chunk_count=count, window=window, plan=plan, endgame=endgame)
            if self._swarm
            else ChunkScheduler(needed, window=window, endgame=endgame)
        )
        if partial.is_finished:
            self._state = ReceiverState.FINISHED
        elif have.is_full:
            self._state = ReceiverState.COMPLETE
        else:
            self._state = ReceiverState.RECEIVING
        self._announced = False  # TransferComplete returned
        self._concluded: set[SourceId] = set()  # sent a result by conclude()

    # -- what it knows -----------------------------------------------------------------------

    @property
    def state(self) -> ReceiverState:
        return self._state

    @property
    def complete(self) -> bool:
        """Every chunk is verified (states ``COMPLETE`` and ``FINISHED``)."""
        return self._have.is_full

    def have(self) -> Bitfield:
        """The chunks verified so far, those the store held at the start included (a copy)."""
        return self._have.copy()

    @property
    def verified_bytes(self) -> int:
        """Bytes of the chunks in :meth:`have`."""
        return self._verified_bytes

    @property
    def sources(self) -> frozenset[SourceId]:
        """Sources that offered and are neither ended nor dropped."""
        return frozenset(self._sources)

    @property
    def bytes_from(self) -> Mapping[SourceId, int]:
        """Verified bytes received from each source this session (ended ones included)."""
        return dict(self._bytes_from)

    def in_flight(self, source: SourceId) -> frozenset[int]:
        """Chunks asked of ``source`` and not delivered."""
        return self._scheduler.in_flight(source)

    def waiting_for(self, source: SourceId) -> Awaiting:
        """What ``source`` owes next (see :class:`Awaiting`)."""
        entry = self._sources.get(source)
        if entry is None:
            return Awaiting.NOTHING if source in self._banned or self._over else Awaiting.OFFER
        if entry.have is None:
            return Awaiting.HAVE
        return Awaiting.CHUNKS if self._scheduler.in_flight(source) else Awaiting.NOTHING

    @property
    def stalled(self) -> bool:
        """Chunks are missing, yet no source has any of them on the way or on offer.

        The adapter then waits for another source (or a ``have`` update), or gives up with
        :meth:`conclude`; the store keeps what was verified.
        """
        if self._state is not ReceiverState.RECEIVING:
            return False
        if any(entry.have is None for entry in self._sources.values()):
            return False
        return not self._scheduler.can_supply()

    @property
    def _over(self) -> bool:
        return self._state in (ReceiverState.CLOSED, ReceiverState.FAILED)

    # -- input -------------------------------------------------------------------------------

    def receive(self, source: SourceId, message: TransferMessage) -> list[Action]:
        """Take ``message`` from ``source``; return what to do, in order.

        Raises ``ProtocolError`` or ``ServiceDistributionError`` when ``source`` broke the rules:
        the source is dropped first (its chunks go back to the pool), so the adapter answers it
        ``Result.failure(error)``, closes its stream and calls :meth:`source_closed` (which
        asks other sources for its chunks).
        """
        if self._state is ReceiverState.CLOSED and source in self._concluded:
            return []  # crossed our result on the wire: the stream is ending anyway
        if self._over:
            raise _unexpected(f"the transfer is {self._state.value}; nothing more is accepted")
        if source in self._banned:
            raise _unexpected("this source was dropped; nothing more is accepted from it")
        try:
            return self._dispatch(source, message)
        except (ProtocolError, ServiceDistributionError) as exc:
            if exc.code == STORAGE_FAILED:
                self._state = ReceiverState.FAILED
            else:
                self._drop(source, ban=True)
            raise

    def _dispatch(self, source: SourceId, message: TransferMessage) -> list[Action]:
        entry = self._sources.get(source)
        if entry is None:
            if not isinstance(message, Offer):
                raise _unexpected(f"a source's first message must be an offer, not {message.TYPE!r}")
            return self._on_offer(source, message)
        if isinstance(message, Chunk):
            return self._on_chunk(source, entry, message)
        if isinstance(message, Have):
            return self._on_have(source, entry, message)
        if isinstance(message, Done):
            return self._on_done(source)
        if isinstance(message, Abort):
            self._drop(source)
            return [SourceEnded(source, message.error), *self.schedule()]
        raise _unexpected(f"a receiver does not accept {message.TYPE!r} here")

    def source_closed(self, source: SourceId) -> list[Action]:
        """``source``'s stream ended (EOF, reset, deadline): forget it, ask others for its chunks.

        Safe to call for any source, any number of times (also after :meth:`receive` raised).
        """
        if source in self._sources:
            self._drop(source)
        return [] if self._over else self.schedule()

    def forget(self, peer: SourceId) -> list[Action]:
        """``peer``, a swarm target, is unreachable or gone: its planned chunks pass to the next owner.

        Dropped first if it is a source; it counts again once it offers (see :class:`SwarmPlan`).
        """
        if peer in self._sources:
            self._drop(peer)
        if isinstance(self._scheduler, SwarmScheduler):
            self._scheduler.forget(peer)
        return [] if self._over else self.schedule()

    def unstick(self) -> list[Action]:
        """No chunk came for a while (the adapter's clock): the origin may be asked for anything
        until a peer delivers again (see :class:`SwarmScheduler`).  A no-op without a plan."""
        if isinstance(self._scheduler, SwarmScheduler):
            self._scheduler.unstick()
        return [] if self._over else self.schedule()

    def schedule(self) -> list[Action]:
        """Fill every source's window with ``want``s (normally done by :meth:`receive` itself)."""
        actions: list[Action] = []
        for source in list(self._sources):
            actions += self._schedule(source)
        return actions

    # -- the end -----------------------------------------------------------------------------

    def finish(self) -> Path:
        """Check the whole archive (blocking; see :meth:`ChunkStore.finish`) and return its path.

        ``transfer_incomplete`` before :class:`TransferComplete`; ``archive_hash_mismatch``
        (state ``FAILED``; a partial transfer is discarded) if the manifest lied.
        """
        if self._state is ReceiverState.FINISHED:
            return self.partial.finish()  # the path again, nothing checked twice
        if self._state is not ReceiverState.COMPLETE:
            fail(TRANSFER_INCOMPLETE, f"the transfer is {self._state.value}, not complete")
        try:
            path = self.partial.finish()
        except ServiceDistributionError:
            self._state = ReceiverState.FAILED
            raise
        self._state = ReceiverState.FINISHED
        return path

    def conclude(self, outcome: Mapping[str, Any] | OrchestratorError) -> list[Action]:
        """Send every source the last word and close: a result map (after :meth:`finish`) or an error.

        Push: the origin gets the install result.  Giving up (no source left, a deadline, an
        install that failed): pass the error.  Idempotent once closed (returns nothing).
        Messages those sources sent before they saw the result are then ignored.
        """
        if self._state is ReceiverState.CLOSED:
            return []
        if isinstance(outcome, OrchestratorError):
            message = Result.failure(outcome)
        else:
            if self._state is not ReceiverState.FINISHED:
                fail(TRANSFER_INCOMPLETE, "a successful result needs a finished transfer (call finish())")
            message = Result.success(dict(outcome))
        actions: list[Action] = [Send(source, message) for source in self._sources]
        self._concluded = set(self._sources)
        for source in list(self._sources):
            self._drop(source)
        self._state = ReceiverState.CLOSED
        return actions

    # -- handlers ----------------------------------------------------------------------------

    def _on_offer(self, source: SourceId, offer: Offer) -> list[Action]:
        if offer.manifest != self.manifest:
            fail(
                MANIFEST_MISMATCH,
                f"the offered manifest (archive {offer.manifest.archive_hash[:12]}, root "
                f"{offer.manifest.root.hex()[:12]}) is not the one this transfer is for "
                f"(archive {self.manifest.archive_hash[:12]}, root {self.manifest.root.hex()[:12]})",
            )
        self._sources[source] = _SourceRecord(offer)
        self._bytes_from.setdefault(source, 0)
        actions: list[Action] = [Send(source, Have(self._have.to_bytes()))]
        if self.complete and not self._announced:
            self._announced = True
            actions.append(TransferComplete())
        return actions

    def _on_have(self, source: SourceId, entry: _SourceRecord, message: Have) -> list[Action]:
        have = Bitfield.from_bytes(message.bits, self.manifest.chunk_count)
        if entry.have is not None and not have.issuperset(entry.have):
            fail(HAVE_REGRESSED, "the source's have update drops chunks it announced before")
        entry.have = have
        self._scheduler.set_have(source, have)
        return self._schedule(source)

    def _on_chunk(self, source: SourceId, entry: _SourceRecord, chunk: Chunk) -> list[Action]:
        index = chunk.index
        if index >= self.manifest.chunk_count:
            fail(
                CHUNK_OUT_OF_RANGE, f"chunk {index} is past the last chunk ({self.manifest.chunk_count - 1})"
            )
        if index in entry.cancelled:  # crossed our cancel on the wire: harmless, dropped unread
            entry.cancelled.discard(index)
            self.bytes_cancelled += len(chunk.data)
            return []
        if not self._scheduler.is_asked(source, index):
            fail(UNEXPECTED_CHUNK, f"chunk {index} was not asked of this source, or was already received")
        try:
            self.manifest.check_chunk(index, chunk.data)  # chunk_size_mismatch, chunk_hash_mismatch
        except ServiceDistributionError as exc:
            return self._on_corrupt(source, entry, index, exc)
        self.partial.write_verified_chunk(index, chunk.data)  # storage_failed: see receive()
        size = len(chunk.data)
        if self._have.add(index):
            self._verified_bytes += size
        self._bytes_from[source] = self._bytes_from.get(source, 0) + size
        others = self._scheduler.received(source, index)
        actions: list[Action] = [ChunkStored(source, index, size)]
        for other in others:
            self._sources[other].cancelled.add(index)
            actions.append(Send(other, CancelChunks((index,))))
        if self._have.is_full:
            self._state = ReceiverState.COMPLETE
            self._announced = True
            full = Have(self._have.to_bytes())
            actions += [Send(s, full) for s in self._sources]
            actions.append(TransferComplete())
            return actions
        if self._swarm:  # a chunk in may lift the origin's restriction, or free any source
            return actions + self.schedule()
        for target in (source, *others):
            actions += self._schedule(target)
        return actions

    def _on_corrupt(
        self, source: SourceId, entry: _SourceRecord, index: int, error: ServiceDistributionError
    ) -> list[Action]:
        entry.corrupt += 1
        self._scheduler.failed(source, index)
        if entry.corrupt > self._max_corrupt:
            raise ServiceDistributionError(
                f"the source sent {entry.corrupt} corrupt chunks (the last: {error.message})",
                code=TOO_MANY_CORRUPT_CHUNKS,
            ) from error
        return [ChunkRejected(source, index, error), *self.schedule()]

    def _on_done(self, source: SourceId) -> list[Action]:
        owed = sorted(self._scheduler.in_flight(source))
        if owed:
            fail(PREMATURE_DONE, f"the source said done but still owes chunks {owed[:8]}")
        self._drop(source)
        return [SourceEnded(source, None), *self.schedule()]

    # -- helpers -----------------------------------------------------------------------------

    def _schedule(self, source: SourceId) -> list[Action]:
        if self._state is not ReceiverState.RECEIVING:
            return []
        picks = self._scheduler.assign(source)
        return [Send(source, Want(tuple(picks)))] if picks else []

    def _drop(self, source: SourceId, *, ban: bool = False) -> None:
        self._sources.pop(source, None)
        self._scheduler.remove_source(source)
        if ban:
            self._banned.add(source)
