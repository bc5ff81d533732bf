"""Which chunk to ask which sender for: the bookkeeping behind a (multi-source) receiver.

The scheduler knows, for every sender ("source"), the chunks it holds and the chunks it has
been asked for and not yet delivered ("in flight").  It never asks one source for more than
``window`` chunks at once, and never asks two sources for the same chunk -- except in the
*endgame*: once every chunk still needed has been asked of some source (none is left that
nobody was asked for), a source with free slots may be asked for a chunk already in flight at
one other source, so that one slow or stalled source does not hold up the last chunks
(BitTorrent's endgame mode).  When such a chunk arrives, the other sources that were asked are
reported so the receiver can cancel.  Not before: in a swarm, a source whose known chunks are
all in flight elsewhere mostly lags in its announcements, and a duplicate then spends a slow
downlink twice -- with the cancel crossing the chunk on the wire, since a sender writes what it
was asked for at once.

The order is lowest index first (sequential disk writes, and a cut transfer keeps a verified
prefix).  A swarm's order (rarest first, and which chunks the origin may be asked for at all)
lives in :class:`~p2p_orchestrator.transfer.swarm_schedule.SwarmScheduler`, which overrides the
hooks :meth:`ChunkScheduler._candidates` and :meth:`ChunkScheduler._allowed` and keeps the rest.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator

from .bitfield import Bitfield

__all__ = ["ChunkScheduler", "SourceId"]

SourceId = Hashable
"""Whatever the adapter uses to name a sender: a peer id, a stream, a test's string."""


class ChunkScheduler:
    """Assign the chunks still ``needed`` to sources, ``window`` at a time per source."""

    def __init__(self, needed: Iterable[int], *, window: int, endgame: bool = True) -> None:
        if type(window) is not int or window < 1:
            raise ValueError(f"window must be a positive int, got {window!r}")
        self.window = window
        self.endgame = endgame
        self._pending: dict[int, None] = dict.fromkeys(sorted(needed))  # needed, asked of nobody
        self._needed = set(self._pending)
        self._holders: dict[int, set[SourceId]] = {}  # in flight: chunk -> sources asked
        self._asked: dict[SourceId, set[int]] = {}
        self._have: dict[SourceId, Bitfield] = {}

    # -- sources -----------------------------------------------------------------------------

    @property
    def sources(self) -> frozenset[SourceId]:
        return frozenset(self._have)

    def set_have(self, source: SourceId, have: Bitfield) -> None:
        """Record (or replace) what ``source`` holds."""
        self._have[source] = have
        self._asked.setdefault(source, set())

    def remove_source(self, source: SourceId) -> None:
        """Forget ``source``; the chunks it was asked for become assignable again."""
        self._have.pop(source, None)
        self._release(source, self._asked.pop(source, ()))

    # -- chunks ------------------------------------------------------------------------------

    @property
    def needed(self) -> frozenset[int]:
        """Chunks not received yet (asked or not)."""
        return frozenset(self._needed)

    def in_flight(self, source: SourceId) -> frozenset[int]:
        """Chunks ``source`` was asked for and has not delivered."""
        return frozenset(self._asked.get(source, ()))

    def is_asked(self, source: SourceId, index: int) -> bool:
        return index in self._asked.get(source, ())

    def assign(self, source: SourceId) -> list[int]:
        """Pick chunks to ask ``source`` for (up to its free slots) and mark them in flight."""
        asked = self._asked.get(source)
        have = self._have.get(source)
        if asked is None or have is None:
            return []
        free = self.window - len(asked)
        picks: list[int] = []
        if free <= 0:
            return picks
        for index in self._candidates(source, have):
            picks.append(index)
            if len(picks) == free:
                break
        for index in picks:
            del self._pending[index]
        if self.endgame and len(picks) < free and not self._pending:
            for index, holders in self._holders.items():
                if (
                    len(holders) == 1
                    and source not in holders
                    and index in have
                    and self._allowed(source, index)
                ):
                    picks.append(index)
                    if len(picks) == free:
                        break
        for index in picks:
            asked.add(index)
            self._holders.setdefault(index, set()).add(source)
        return picks

    def _candidates(self, source: SourceId, have: Bitfield) -> Iterator[int]:
        """Chunks asked of nobody that ``source`` may be asked for (it holds them: ``have``), best first.

        Here: lowest index first.  Overridden for swarms.
        """
        return (index for index in self._pending if index in have)

    def _allowed(self, source: SourceId, index: int) -> bool:
        """Whether ``source`` may be asked for chunk ``index`` at all (endgame duplicates included)."""
        return True

    def can_supply(self) -> bool:
        """Whether some chunk still needed is in flight, or held by some source."""
        if self._holders:
            return True
        return any(index in have for have in self._have.values() for index in self._pending)

    def received(self, source: SourceId, index: int) -> list[SourceId]:
        """Chunk ``index`` arrived (verified) from ``source``; return the others asked for it."""
        self._needed.discard(index)
        self._pending.pop(index, None)
        others = [s for s in self._holders.pop(index, ()) if s != source]
        for holder in (source, *others):
            self._asked.get(holder, set()).discard(index)
        return others

    def failed(self, source: SourceId, index: int) -> None:
        """``source`` delivered chunk ``index`` corrupt: it may be asked again (of anyone)."""
        self._asked.get(source, set()).discard(index)
        self._release(source, (index,))

    def _release(self, source: SourceId, indices: Iterable[int]) -> None:
        """``source`` no longer brings ``indices``: those nobody else was asked for are pending again.

        They keep their place in the order (lowest index first), so a chunk refused as corrupt
        is asked again before any new one.
        """
        freed = []
        for index in indices:
            holders = self._holders.get(index)
            if holders is not None:
                holders.discard(source)
                if holders:
                    continue
                del self._holders[index]
            if index in self._needed:
                freed.append(index)
        if freed:
            self._pending = dict.fromkeys(sorted([*self._pending, *freed]))
