"""A swarm's chunk schedule: every chunk leaves the origin about once, then targets trade.

A swarm distribution knows its whole target set up front (the origin lists it in the
``offer``), so it needs neither a tracker nor luck.  :class:`SwarmPlan` gives every chunk an
*owner*: chunk ``i`` of a distribution to targets ``t0 .. t(N-1)`` is owned by ``t(i mod N)``
(striped, so every owner receives its share evenly over the whole transfer).  Each target asks
the origin only for the chunks it owns, and asks the other targets for everything else as they
announce it.  The origin's uplink then carries each chunk about once -- ``1x`` the archive
instead of ``Nx`` -- and every target's uplink forwards its ``1/N`` share to the ``N - 1``
others, so all links work at once and ``T(N)`` stays close to ``T(1)``.

:class:`SwarmScheduler` applies that plan inside a receiver (it replaces the sequential order
of :class:`~p2p_orchestrator.transfer.ChunkScheduler`):

* **Peers, rarest first.**  A target is asked for the chunks it holds that the fewest known
  sources hold, ties broken by a per-receiver random order (so two receivers do not chase the
  same chunk); rarest first spreads fresh chunks fastest and keeps every chunk available from
  more than one peer as early as possible.  At most ``window`` chunks are in flight per source.
* **The origin, by the plan.**  The origin is asked for a chunk only if this receiver owns it.
  Owners that went away (their stream ended, they lied and were dropped, or the adapter could
  not reach them: :meth:`SwarmScheduler.forget`) pass their chunks on to the next live target
  in ring order, so a departed target costs the origin its share once more, not ``N - 1`` times.
* **Never stuck.**  An owner may stay connected yet deliver nothing (it lost its own stream to
  the origin, or its link crawls).  The receiver cannot tell that from slowness without a
  clock, so the adapter, which has one, calls :meth:`SwarmScheduler.unstick` (through
  :meth:`TransferReceiver.unstick <p2p_orchestrator.transfer.TransferReceiver.unstick>`) when
  no chunk arrived for a while: the origin may then be asked for any missing chunk, rarest
  first, ``window`` at a time, until a chunk arrives from a peer again.  (A rule without a
  clock -- "ask the origin whenever nothing is in flight" -- was tried in the simulation and
  cost the origin 3x the archive with 16 targets owning one chunk each: they all went idle at
  the same moment, just before the owners' announcements arrived.)

Without a plan (a receiver that is not one of the plan's targets, or a plain multi-source
fetch), every source is a peer: rarest first, no origin rule.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from .bitfield import Bitfield
from .schedule import ChunkScheduler, SourceId

__all__ = ["SwarmPlan", "SwarmScheduler"]


@dataclass(frozen=True)
class SwarmPlan:
    """Who owns which chunk in one swarm distribution, as seen by the target ``me``.

    ``targets``: every target of the distribution, in the origin's order (the ``offer``'s
    ``peers``; every target sees the same list, so all agree on the owners).  ``origin``: the
    source id of the origin.  ``me``: this receiver's own id (one of ``targets``).
    """

    targets: tuple[Hashable, ...]
    origin: SourceId
    me: Hashable

    def __post_init__(self) -> None:
        if len(set(self.targets)) != len(self.targets):
            raise ValueError("a swarm plan's targets must be distinct")
        if self.me not in self.targets:
            raise ValueError("a swarm plan's receiver must be one of its targets")
        if self.origin in self.targets:
            raise ValueError("the origin cannot also be a target")

    @classmethod
    def of(cls, targets: Iterable[Hashable], origin: SourceId, me: Hashable) -> SwarmPlan:
        return cls(tuple(targets), origin, me)

    def owner(self, index: int, gone: frozenset[Hashable] | set[Hashable] = frozenset()) -> Hashable:
        """The target that fetches chunk ``index`` from the origin: ``targets[index mod N]``, or,
        if that one is ``gone``, the next live one in ring order (``me`` is never gone)."""
        count = len(self.targets)
        for step in range(count):
            candidate = self.targets[(index + step) % count]
            if candidate == self.me or candidate not in gone:
                return candidate
        return self.me  # unreachable: me is always live


def _tiebreak_order(seed: Hashable, count: int) -> list[int]:
    """A per-receiver random rank for each chunk index (deterministic for a seed; ``None``: random)."""
    rng = random.Random() if seed is None else random.Random(hashlib.sha256(repr(seed).encode()).digest())
    ranks = list(range(count))
    rng.shuffle(ranks)
    return ranks


class SwarmScheduler(ChunkScheduler):
    """Rarest first among peers, the plan at the origin (see the module docstring)."""

    def __init__(
        self,
        needed: Iterable[int],
        *,
        chunk_count: int,
        window: int,
        plan: SwarmPlan | None = None,
        endgame: bool = True,
        seed: Hashable = None,
    ) -> None:
        super().__init__(needed, window=window, endgame=endgame)
        self.plan = plan
        self._availability = [0] * chunk_count  # live sources holding each chunk
        self._rank = _tiebreak_order(seed if seed is not None else (plan.me if plan else None), chunk_count)
        self._gone: set[Hashable] = set()
        self._unstuck = False

    # -- sources -----------------------------------------------------------------------------

    def set_have(self, source: SourceId, have: Bitfield) -> None:
        old = self._have.get(source)
        self._count(old, -1)
        self._count(have, +1)
        self._gone.discard(source)
        super().set_have(source, have)

    def remove_source(self, source: SourceId) -> None:
        self._count(self._have.get(source), -1)
        self.forget(source)
        super().remove_source(source)

    def forget(self, peer: Hashable) -> None:
        """``peer`` is gone (unreachable, ended or dropped): the chunks it owned pass to the next target."""
        if self.plan is None or peer != self.plan.me:
            self._gone.add(peer)

    def unstick(self) -> None:
        """Let the origin be asked for any missing chunk until a peer delivers one (see above)."""
        self._unstuck = True

    def received(self, source: SourceId, index: int) -> list[SourceId]:
        if not self._is_origin(source):
            self._unstuck = False  # peers deliver again: back to the plan
        return super().received(source, index)

    @property
    def gone(self) -> frozenset[Hashable]:
        """Peers this receiver considers gone (until they offer again)."""
        return frozenset(self._gone)

    def _count(self, have: Bitfield | None, delta: int) -> None:
        if have is not None:
            availability = self._availability
            for index in have:
                availability[index] += delta

    # -- the order ---------------------------------------------------------------------------

    def _is_origin(self, source: SourceId) -> bool:
        return self.plan is not None and source == self.plan.origin

    def _allowed(self, source: SourceId, index: int) -> bool:
        if not self._is_origin(source):
            return True
        plan = self.plan
        assert plan is not None
        return self._unstuck or plan.owner(index, self._gone) == plan.me

    def _candidates(self, source: SourceId, have: Bitfield) -> Iterator[int]:
        availability, rank = self._availability, self._rank
        if self._is_origin(source):
            plan = self.plan
            assert plan is not None
            mine = [i for i in self._pending if i in have and plan.owner(i, self._gone) == plan.me]
            if mine or not self._unstuck:
                return iter(mine)  # in index order: the origin sends each owner its share in order
            # Unstuck by the adapter: the rarest chunks first, from the origin.
        picks = (i for i in self._pending if i in have)
        return iter(heapq.nsmallest(self.window, picks, key=lambda i: (availability[i], rank[i])))

    def rarest(self, indices: Sequence[int]) -> list[int]:
        """``indices`` sorted rarest first (for tests and diagnostics)."""
        return sorted(indices, key=lambda i: (self._availability[i], self._rank[i]))
