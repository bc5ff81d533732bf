"""The swarm scheduler: the plan at the origin, rarest first among peers, windows, forgetting."""

from __future__ import annotations

from pathlib import Path

import pytest

from p2p_orchestrator.errors import ServiceDistributionError
from p2p_orchestrator.transfer import (
    Bitfield,
    Chunk,
    Have,
    Offer,
    PartialStore,
    Send,
    SwarmPlan,
    SwarmScheduler,
    TransferReceiver,
    Want,
)
from tests.transfer.support import archive

TARGETS = ("a", "b", "c", "d")


def scheduler(me: str = "a", chunks: int = 16, window: int = 4, plan: bool = True) -> SwarmScheduler:
    swarm = SwarmPlan.of(TARGETS, "origin", me) if plan else None
    return SwarmScheduler(range(chunks), chunk_count=chunks, window=window, plan=swarm)


def full(chunks: int = 16) -> Bitfield:
    return Bitfield.full(chunks)


def test_the_plan_stripes_chunks_over_the_targets_and_passes_a_gone_owner_on() -> None:
    plan = SwarmPlan.of(TARGETS, "origin", "a")
    assert [plan.owner(i) for i in range(6)] == ["a", "b", "c", "d", "a", "b"]
    assert plan.owner(1, {"b"}) == "c"
    assert plan.owner(3, {"d"}) == "a"  # the ring wraps
    assert plan.owner(2, {"b", "c", "d"}) == "a"
    assert SwarmPlan.of(TARGETS, "origin", "b").owner(1, {"b"}) == "b"  # never gone to itself


@pytest.mark.parametrize(
    ("targets", "origin", "me"), [(("a", "a"), "o", "a"), (("a", "b"), "o", "z"), (("a", "b"), "a", "b")]
)
def test_a_plan_refuses_inconsistent_roles(targets: tuple[str, ...], origin: str, me: str) -> None:
    with pytest.raises(ValueError, match=r"swarm plan|origin"):
        SwarmPlan.of(targets, origin, me)


def test_the_origin_is_asked_only_for_the_chunks_this_target_owns_in_order() -> None:
    s = scheduler("b")
    s.set_have("origin", full())
    assert s.assign("origin") == [1, 5, 9, 13]
    assert s.assign("origin") == []  # window full
    s.received("origin", 1)
    assert s.assign("origin") == []  # b owns nothing else: the rest comes from peers


def test_peers_are_asked_rarest_first_within_their_window() -> None:
    s = scheduler("a", plan=False)
    s.set_have("p", full())
    s.set_have("q", Bitfield.from_indices(16, range(8)))
    picks = s.assign("p")
    assert len(picks) == 4
    assert all(i >= 8 for i in picks)  # only p holds 8..15
    assert s.in_flight("p") == frozenset(picks)
    assert s.assign("p") == []


def test_equally_rare_chunks_are_ordered_differently_per_receiver() -> None:
    orders = set()
    for me in TARGETS:
        s = scheduler(me, chunks=64, plan=False)
        s.set_have("p", full(64))
        orders.add(tuple(s.assign("p")))
    assert len(orders) > 1  # two receivers do not chase the same chunks


def test_a_forgotten_owner_s_chunks_are_asked_of_the_origin_by_the_next_owner() -> None:
    s = scheduler("a")
    s.set_have("origin", full())
    assert s.assign("origin") == [0, 4, 8, 12]
    s.forget("d")  # d owned 3, 7, 11, 15; a is next in the ring
    for index in (0, 4, 8, 12):
        s.received("origin", index)
    assert s.assign("origin") == [3, 7, 11, 15]
    assert "d" in s.gone
    s.set_have("d", Bitfield(16))  # d offers again: it counts again
    assert "d" not in s.gone


def test_a_dropped_peer_counts_as_gone_and_its_rarity_is_uncounted() -> None:
    s = scheduler("a")
    s.set_have("c", Bitfield.from_indices(16, [2, 6]))
    s.set_have("b", Bitfield.from_indices(16, [2]))
    assert s.rarest([2, 6]) == [6, 2]
    s.remove_source("c")
    assert "c" in s.gone
    assert s.assign("b") == [2]


def test_unstick_lets_the_origin_serve_anything_until_a_peer_delivers() -> None:
    s = scheduler("a")
    s.set_have("origin", full())
    s.set_have("b", Bitfield(16))
    mine = s.assign("origin")
    for index in mine:
        s.received("origin", index)
    assert s.assign("origin") == [] and s.needed  # the owners of the rest are not delivering
    s.unstick()
    extra = s.assign("origin")
    assert len(extra) == 4 and not set(extra) & set(mine)
    s.received("origin", extra[0])  # the origin delivering does not end it
    assert len(s.assign("origin")) == 1
    spare = min(i for i in s.needed if i not in s.in_flight("origin"))
    s.set_have("b", Bitfield.from_indices(16, [spare]))
    assert s.assign("b") == [spare]
    s.received("b", spare)
    for index in list(s.in_flight("origin")):
        s.received("origin", index)
    assert s.assign("origin") == []  # a peer delivered: back to the plan


def test_the_origin_duplicates_only_its_own_chunks_in_the_endgame() -> None:
    s = scheduler("a", chunks=8, window=8)
    s.set_have("origin", full(8))
    s.set_have("b", full(8))
    assert sorted(s.assign("b")) == list(range(8))  # everything is in flight at b
    assert sorted(s.assign("origin")) == [0, 4]  # endgame, but only what a owns


def test_no_duplicate_is_asked_for_while_some_chunk_is_asked_of_nobody() -> None:
    # Mid-swarm: c's announcements lag, so all it is known to hold is in flight at b already.
    # Asking c for those again would spend a slow downlink twice (before, a quarter of what a
    # target received on the 16-target testbed were such duplicates): c waits for news instead.
    s = scheduler("a", chunks=8, window=2)
    s.set_have("b", Bitfield.from_indices(8, [1, 2]))
    s.set_have("c", Bitfield.from_indices(8, [1, 2]))
    assert sorted(s.assign("b")) == [1, 2]
    assert s.assign("c") == []  # 0 and 3..7 are still asked of nobody
    s.set_have("c", Bitfield.from_indices(8, [1, 2, 3]))
    assert s.assign("c") == [3]
    s.set_have("d", full(8))
    assert sorted(s.assign("d")) == [5, 6]  # rarest first, the plan's own share (0, 4) from the origin
    s.set_have("origin", full(8))
    assert sorted(s.assign("origin")) == [0, 4]
    s.set_have("b", full(8))
    s.received("b", 1)
    assert s.assign("b") == [7]  # the last chunk asked of nobody: now every chunk is in flight
    assert s.assign("c") == [2]  # the endgame: c may duplicate what b still owes
    assert s.received("b", 2) == ["c"]  # and is cancelled when b delivers first


def test_a_receiver_with_a_plan_drops_a_lying_peer_and_gets_its_chunks_elsewhere(tmp_path: Path) -> None:
    _, data, manifest = archive(tmp_path, size=8 * 65536)
    store = PartialStore(tmp_path / "partials")
    receiver = TransferReceiver(store.open(manifest), plan=SwarmPlan.of(("a", "b"), "origin", "a"))
    receiver.receive("b", Offer(manifest, "fetch"))
    actions = receiver.receive("b", Have(Bitfield.full(8).to_bytes()))
    wants = [a.message for a in actions if isinstance(a, Send) and isinstance(a.message, Want)]
    assert wants and all(a.source == "b" for a in actions if isinstance(a, Send))
    asked = list(wants[0].indices)
    bad = [Chunk(index, b"\0" * manifest.chunk_length(index)) for index in asked]
    for chunk in bad[:3]:  # three corrupt chunks are refused and asked again...
        receiver.receive("b", chunk)
    with pytest.raises(ServiceDistributionError) as info:  # ...the fourth drops the peer
        receiver.receive("b", bad[0])
    assert info.value.code == "too_many_corrupt_chunks"
    assert "b" not in receiver.sources
    receiver.receive("origin", Offer(manifest))
    actions = receiver.receive("origin", Have(Bitfield.full(8).to_bytes()))
    wants = [a.message for a in actions if isinstance(a, Send) and isinstance(a.message, Want)]
    assert wants  # b is gone: a owns every chunk now and asks the origin
    assert data
