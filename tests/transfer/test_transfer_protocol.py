"""The sender and receiver state machines: every message order, every lie, dedup, many sources."""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any

import pytest

import p2p_orchestrator.transfer as transfer_package
from p2p_orchestrator.errors import (
    OrchestratorError,
    PermissionDenied,
    ProtocolError,
    ServiceDistributionError,
)
from p2p_orchestrator.transfer import (
    Abort,
    Awaiting,
    Bitfield,
    CancelChunks,
    Chunk,
    ChunkRejected,
    ChunkStored,
    Done,
    Fetch,
    Have,
    Offer,
    PartialTransfer,
    ReceiverState,
    Result,
    SenderAwaiting,
    SenderState,
    SourceEnded,
    TransferComplete,
    TransferManifest,
    TransferReceiver,
    TransferSender,
    Want,
)
from tests.transfer.support import CHUNK, Link, archive, lying_manifest, reader, sends, store

S = "origin"


class World:
    """An archive, its manifest, a partial store, and helpers to drive a receiver by hand."""

    def __init__(self, tmp_path: Path, size: int = 6 * CHUNK + 999) -> None:
        self.tmp_path = tmp_path
        self.path, self.data, self.manifest = archive(tmp_path, size)
        self.partials = store(tmp_path)
        self.count = self.manifest.chunk_count

    def piece(self, index: int) -> bytes:
        return self.data[index * CHUNK : (index + 1) * CHUNK]

    def receiver(self, **kwargs: Any) -> TransferReceiver:
        return TransferReceiver(self.partials.open(self.manifest), **kwargs)

    def sender(self, **kwargs: Any) -> TransferSender:
        return TransferSender(self.manifest, reader(self.path, self.manifest), **kwargs)

    def started(self, receiver: TransferReceiver, source: str = S, have: Bitfield | None = None) -> list[int]:
        """Offer + have from ``source``; return the chunks the receiver asked it for."""
        receiver.receive(source, Offer(self.manifest))
        bits = (have or Bitfield.full(self.count)).to_bytes()
        wants = [m for m in sends(receiver.receive(source, Have(bits))) if isinstance(m, Want)]
        return [i for w in wants for i in w.indices]


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def refused(receiver: TransferReceiver, message: Any, code: str, source: str = S) -> OrchestratorError:
    with pytest.raises((ProtocolError, ServiceDistributionError)) as info:
        receiver.receive(source, message)
    assert info.value.code == code
    assert source not in receiver.sources
    with pytest.raises(ProtocolError):  # dropped and banned
        receiver.receive(source, Done())
    return info.value


# -- the whole flow -------------------------------------------------------------------------


def test_push_transfer_delivers_the_archive(world: World) -> None:
    sender = world.sender(purpose="install")
    receiver = world.receiver()
    link = Link(
        sender, receiver, install=lambda path: {"success": True, "bytes": len(path.read_bytes())}
    ).run()
    assert link.error is None
    assert receiver.state is ReceiverState.CLOSED
    assert receiver.partial.data_path.read_bytes() == world.data
    assert sender.state is SenderState.CLOSED
    assert sender.outcome == Result.success({"success": True, "bytes": len(world.data)})
    assert sender.bytes_sent == link.chunk_bytes == len(world.data)
    assert sorted(link.chunks) == list(range(world.count)) and link.chunks == sorted(link.chunks)
    assert receiver.bytes_from == {S: len(world.data)}
    stored = [a for a in link.actions if isinstance(a, ChunkStored)]
    assert [a.index for a in stored] == list(range(world.count))
    assert sum(isinstance(a, TransferComplete) for a in link.actions) == 1


def test_receiver_keeps_at_most_window_chunks_in_flight(world: World) -> None:
    receiver = world.receiver(window=2)
    assert world.started(receiver) == [0, 1]
    assert receiver.waiting_for(S) is Awaiting.CHUNKS and receiver.in_flight(S) == {0, 1}
    actions = receiver.receive(S, Chunk(1, world.piece(1)))  # any order among those asked
    assert actions[0] == ChunkStored(S, 1, CHUNK)
    assert sends(actions) == [Want((2,))]
    assert receiver.in_flight(S) == {0, 2}


def test_waiting_for_follows_the_flow(world: World) -> None:
    receiver = world.receiver(window=16)
    assert receiver.waiting_for(S) is Awaiting.OFFER
    receiver.receive(S, Offer(world.manifest))
    assert receiver.waiting_for(S) is Awaiting.HAVE
    receiver.receive(S, Have(Bitfield(world.count).to_bytes()))  # holds nothing (yet)
    assert receiver.waiting_for(S) is Awaiting.NOTHING and receiver.stalled
    actions = receiver.receive(S, Have(Bitfield.from_indices(world.count, [3]).to_bytes()))
    assert sends(actions) == [Want((3,))] and not receiver.stalled
    assert receiver.waiting_for(S) is Awaiting.CHUNKS


def test_sender_flow_and_waiting_for(world: World) -> None:
    sender = world.sender(max_in_flight=4)
    assert sender.state is SenderState.IDLE and sender.next_chunk() is None
    offer, have = sender.start()
    assert isinstance(offer, Offer) and offer.manifest == world.manifest
    assert have == Have(Bitfield.full(world.count).to_bytes())
    assert sender.waiting_for is SenderAwaiting.HAVE
    sender.receive(Have(Bitfield.from_indices(world.count, [0]).to_bytes()))
    assert sender.waiting_for is SenderAwaiting.WANTS
    assert sender.receiver_have == Bitfield.from_indices(world.count, [0])
    sender.receive(Want((2, 1)))
    assert sender.pending == (2, 1) and sender.waiting_for is SenderAwaiting.NOTHING
    sender.receive(CancelChunks((1, 5)))  # 5 was never asked: crossed on the wire, ignored
    chunk = sender.next_chunk()
    assert chunk == Chunk(2, world.piece(2)) and sender.next_chunk() is None
    sender.receive(Have(Bitfield.full(world.count).to_bytes()))
    assert sender.waiting_for is SenderAwaiting.RESULT
    sender.receive(Result.success({"ok": 1}))
    assert sender.state is SenderState.CLOSED and sender.waiting_for is SenderAwaiting.NOTHING
    with pytest.raises(ProtocolError):
        sender.receive(Want((0,)))


# -- lies a sender tells ----------------------------------------------------------------------


def test_chunk_not_asked_for(world: World) -> None:
    receiver = world.receiver(window=2)
    world.started(receiver)
    refused(receiver, Chunk(4, world.piece(4)), "unexpected_chunk")  # correct bytes, never asked
    assert receiver.partial.missing() == list(range(world.count))


def test_chunk_before_have_and_repeated_chunk(world: World) -> None:
    receiver = world.receiver()
    receiver.receive(S, Offer(world.manifest))
    refused(receiver, Chunk(0, world.piece(0)), "unexpected_chunk")
    receiver2 = TransferReceiver(receiver.partial)
    world.started(receiver2, "second")
    receiver2.receive("second", Chunk(0, world.piece(0)))
    refused(receiver2, Chunk(0, world.piece(0)), "unexpected_chunk", source="second")


def test_chunk_out_of_range(world: World) -> None:
    receiver = world.receiver()
    world.started(receiver)
    refused(receiver, Chunk(world.count, b"x"), "chunk_out_of_range")


@pytest.mark.parametrize("lie", ["hash", "short", "long"])
def test_corrupt_chunks_are_refused_and_asked_again_then_the_source_is_dropped(
    world: World, lie: str
) -> None:
    receiver = world.receiver(window=1, max_corrupt=2)
    assert world.started(receiver) == [0]
    bad = {"hash": world.piece(1), "short": world.piece(0)[:-1], "long": world.piece(0) + b"!"}[lie]
    code = "chunk_hash_mismatch" if lie == "hash" else "chunk_size_mismatch"
    for _ in range(2):
        actions = receiver.receive(S, Chunk(0, bad))
        rejected = actions[0]
        assert isinstance(rejected, ChunkRejected) and rejected.index == 0 and rejected.error.code == code
        assert sends(actions) == [Want((0,))]  # asked again
        assert not receiver.partial.has_chunk(0)
    error = refused(receiver, Chunk(0, bad), "too_many_corrupt_chunks")
    assert isinstance(error.__cause__, ServiceDistributionError) and error.__cause__.code == code
    assert receiver.partial.data_path.read_bytes()[:CHUNK] == bytes(CHUNK)  # nothing written


def test_a_good_chunk_after_a_bad_one_is_taken(world: World) -> None:
    receiver = world.receiver(window=1)
    world.started(receiver)
    receiver.receive(S, Chunk(0, world.piece(1)))
    actions = receiver.receive(S, Chunk(0, world.piece(0)))
    assert actions[0] == ChunkStored(S, 0, CHUNK)


def test_done_while_chunks_are_owed(world: World) -> None:
    receiver = world.receiver(window=2)
    world.started(receiver)
    receiver.receive(S, Chunk(0, world.piece(0)))
    refused(receiver, Done(), "premature_done")


def test_done_when_nothing_is_owed_ends_the_source(world: World) -> None:
    receiver = world.receiver()
    receiver.receive(S, Offer(world.manifest))
    receiver.receive(S, Have(Bitfield(world.count).to_bytes()))
    assert receiver.receive(S, Done()) == [SourceEnded(S, None)]
    assert receiver.sources == frozenset() and receiver.waiting_for(S) is Awaiting.OFFER


def test_abort_ends_the_source_with_its_error(world: World) -> None:
    receiver = world.receiver()
    world.started(receiver)
    [ended] = receiver.receive(S, Abort(PermissionDenied("no", code="permission_denied")))
    assert isinstance(ended, SourceEnded) and isinstance(ended.error, PermissionDenied)
    assert receiver.in_flight(S) == frozenset()


def test_have_lies(world: World) -> None:
    receiver = world.receiver()
    world.started(receiver, have=Bitfield.from_indices(world.count, [0, 1]))
    refused(receiver, Have(Bitfield.from_indices(world.count, [0]).to_bytes()), "have_regressed")
    receiver2 = TransferReceiver(receiver.partial)
    receiver2.receive("b", Offer(world.manifest))
    refused(receiver2, Have(b"\xff"), "bad_bitfield", source="b")


def test_a_manifest_other_than_the_transfers(world: World, tmp_path: Path) -> None:
    other = archive(tmp_path, 2 * CHUNK, seed=9)[2]
    receiver = world.receiver()
    refused(receiver, Offer(other), "manifest_mismatch")


@pytest.mark.parametrize(
    "message",
    [Have(b"\x00"), Done(), Chunk(0, b"x"), Want((0,)), Result.success({}), Fetch(service="svc")],
    ids=lambda m: m.TYPE,
)
def test_a_source_must_start_with_an_offer(world: World, message: Any) -> None:
    receiver = world.receiver()
    refused(receiver, message, "unexpected_message")


@pytest.mark.parametrize(
    "message",
    [Offer, Want((0,)), CancelChunks((0,)), Result.success({}), Fetch(service="svc")],
    ids=lambda m: getattr(m, "TYPE", "offer"),
)
def test_messages_a_receiver_never_takes_from_a_source(world: World, message: Any) -> None:
    receiver = world.receiver()
    receiver.receive(S, Offer(world.manifest))
    refused(receiver, Offer(world.manifest) if message is Offer else message, "unexpected_message")


def test_a_manifest_that_lies_about_the_whole_archive(tmp_path: Path) -> None:
    world = World(tmp_path)
    liar = lying_manifest(world.data, CHUNK, "cd" * 32)
    receiver = TransferReceiver(world.partials.open(liar))
    sender = TransferSender(liar, reader(world.path, liar))
    with pytest.raises(ServiceDistributionError) as info:
        Link(sender, receiver).run()
    assert info.value.code == "archive_hash_mismatch"
    assert receiver.state is ReceiverState.FAILED
    assert not (world.partials.root / liar.archive_hash).exists()
    assert receiver.conclude(info.value)  # the origin is told why
    assert receiver.state is ReceiverState.CLOSED


# -- the sender's refusals ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "message", "code"),
    [
        ([], Want((0,)), "unexpected_message"),  # before the receiver's have
        ([], CancelChunks((0,)), "unexpected_message"),
        (["have"], Want((99,)), "chunk_out_of_range"),
        (["have"], CancelChunks((99,)), "chunk_out_of_range"),
        (["have"], Want((6,)), "chunk_unavailable"),  # the sender holds 0..5 only
        (["have", Want((1,))], Want((1,)), "duplicate_want"),
        (["have", Want((0, 1, 2))], Want((3, 4)), "too_many_wants"),
        (["have", Have(b"\x00")], Have(b"\x00\x00"), "bad_bitfield"),
        (["full"], Have(b"\x00"), "have_regressed"),
        (["have"], Chunk(0, b"x"), "unexpected_message"),
        (["have"], Offer, "unexpected_message"),
        (["have"], Done(), "unexpected_message"),
        (["have"], Fetch(service="svc"), "unexpected_message"),
    ],
)
def test_sender_refuses(world: World, setup: list[Any], message: Any, code: str) -> None:
    assert world.count == 7
    sender = world.sender(have=Bitfield.from_indices(world.count, range(6)), max_in_flight=4)
    sender.start()
    for step in setup:
        if step == "have":
            step = Have(Bitfield(world.count).to_bytes())
        elif step == "full":
            step = Have(Bitfield.from_indices(world.count, [0]).to_bytes())
        sender.receive(step)
    with pytest.raises((ProtocolError, ServiceDistributionError)) as info:
        sender.receive(Offer(world.manifest) if message is Offer else message)
    assert info.value.code == code
    assert sender.state is SenderState.FAILED
    with pytest.raises(ProtocolError):
        sender.receive(Result.success({}))


def test_sender_result_may_come_at_any_time(world: World) -> None:
    sender = world.sender()
    sender.start()
    sender.receive(Result.failure(PermissionDenied("role", code="permission_denied")))
    assert sender.state is SenderState.CLOSED and sender.outcome is not None and not sender.outcome.ok


def test_sender_finish_and_announce(world: World) -> None:
    sender = world.sender(have=Bitfield.from_indices(world.count, [0]))
    with pytest.raises(ProtocolError):
        sender.finish()
    sender.start()
    assert sender.announce([0]) == []
    assert sender.announce([1, 2]) == [Have(Bitfield.from_indices(world.count, [0, 1, 2]).to_bytes())]
    sender.receive(Have(Bitfield(world.count).to_bytes()))
    sender.receive(Want((1,)))
    with pytest.raises(ServiceDistributionError) as info:
        sender.finish()
    assert info.value.code == "chunks_pending"
    assert sender.next_chunk() == Chunk(1, world.piece(1))
    assert sender.finish() == [Done()]
    assert sender.state is SenderState.DONE and sender.waiting_for is SenderAwaiting.RESULT
    with pytest.raises(ProtocolError):
        sender.receive(Want((2,)))


def test_sender_notices_a_changed_file(world: World) -> None:
    sender = TransferSender(world.manifest, lambda index: b"short")
    sender.start()
    sender.receive(Have(Bitfield(world.count).to_bytes()))
    sender.receive(Want((0,)))
    with pytest.raises(ServiceDistributionError) as info:
        sender.next_chunk()
    assert info.value.code == "source_changed" and sender.state is SenderState.FAILED
    verifying = TransferSender(world.manifest, lambda index: world.piece(index + 1), verify=True)
    verifying.start()
    verifying.receive(Have(Bitfield(world.count).to_bytes()))
    verifying.receive(Want((0,)))
    with pytest.raises(ServiceDistributionError) as info:
        verifying.next_chunk()
    assert info.value.code == "source_changed"
    with pytest.raises(ValueError, match="covers"):
        TransferSender(world.manifest, reader(world.path, world.manifest), have=Bitfield(3))


# -- dedup ----------------------------------------------------------------------------------


def test_a_receiver_that_has_the_archive_gets_nothing(world: World, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / f"{world.manifest.archive_hash}.tar.gz").write_bytes(world.data)
    partials = store(tmp_path / "other", archive_cache=cache)
    receiver = TransferReceiver(partials.open(world.manifest))
    sender = world.sender()
    link = Link(sender, receiver).run()
    assert link.chunk_bytes == 0 and sender.bytes_sent == 0
    assert sender.state is SenderState.CLOSED and sender.outcome is not None and sender.outcome.ok
    assert sender.receiver_have == Bitfield.full(world.count)


def test_a_receiver_that_has_half_gets_only_the_other_half(world: World) -> None:
    with world.partials.open(world.manifest) as partial:
        for index in range(0, world.count, 2):
            partial.write_chunk(index, world.piece(index))
    link = Link(world.sender(), world.receiver()).run()
    assert sorted(link.chunks) == list(range(1, world.count, 2))
    assert link.chunk_bytes == sum(world.manifest.chunk_length(i) for i in range(1, world.count, 2))
    assert link.receiver.partial.data_path.read_bytes() == world.data


# -- several sources ------------------------------------------------------------------------


def test_two_sources_share_the_work(world: World) -> None:
    receiver = world.receiver(window=2, endgame=False)
    first = world.started(receiver, "a", have=Bitfield.from_indices(world.count, [0, 1, 2, 3]))
    second = world.started(receiver, "b", have=Bitfield.full(world.count))
    assert first == [0, 1] and second == [2, 3]
    todo = {"a": list(first), "b": list(second)}
    while todo["a"] or todo["b"]:
        for source in ("a", "b"):
            if todo[source]:
                index = todo[source].pop(0)
                for message in sends(receiver.receive(source, Chunk(index, world.piece(index))), source):
                    assert isinstance(message, Want | Have)
                    if isinstance(message, Want):
                        todo[source] += message.indices
    assert receiver.complete and receiver.state is ReceiverState.COMPLETE
    assert set(receiver.bytes_from) == {"a", "b"} and all(receiver.bytes_from.values())
    assert sum(receiver.bytes_from.values()) == len(world.data)
    path = receiver.finish()
    assert path.read_bytes() == world.data
    results = receiver.conclude({"done": True})
    assert {a.source for a in results} == {"a", "b"}  # type: ignore[union-attr]
    assert receiver.conclude({"done": True}) == []


def test_a_lying_source_is_dropped_and_the_others_finish(world: World) -> None:
    receiver = world.receiver(window=2, max_corrupt=0, endgame=False)
    world.started(receiver, "liar")
    world.started(receiver, "honest")
    assert receiver.in_flight("liar") == {0, 1}
    refused(receiver, Chunk(0, world.piece(5)), "too_many_corrupt_chunks", source="liar")
    reassigned = sends(receiver.source_closed("liar"), "honest")
    assert reassigned == [] and receiver.in_flight("liar") == frozenset()
    asked = set(receiver.in_flight("honest"))
    while not receiver.complete:
        index = min(asked)
        asked.discard(index)
        for message in sends(receiver.receive("honest", Chunk(index, world.piece(index)))):
            if isinstance(message, Want):
                asked |= set(message.indices)
    assert receiver.bytes_from["liar"] == 0
    assert receiver.finish().read_bytes() == world.data


def test_a_departed_sources_chunks_go_to_another(world: World) -> None:
    receiver = world.receiver(window=2, endgame=False)
    world.started(receiver, "a")
    world.started(receiver, "b")
    assert receiver.in_flight("a") == {0, 1} and receiver.in_flight("b") == {2, 3}
    receiver.receive("b", Chunk(2, world.piece(2)))
    assert receiver.in_flight("b") == {3, 4}
    actions = receiver.source_closed("a")
    assert sends(actions, "b") == []  # b's window is full
    actions = receiver.receive("b", Chunk(3, world.piece(3)))
    assert sends(actions, "b") == [Want((0,))]
    assert receiver.source_closed("a") == [] and receiver.source_closed("never") == []


def test_endgame_asks_twice_and_cancels_the_loser(tmp_path: Path) -> None:
    world = World(tmp_path, 3 * CHUNK)
    receiver = world.receiver(window=2)
    assert world.started(receiver, "slow") == [0, 1]
    assert world.started(receiver, "fast") == [2, 0]  # 2 is unasked; 0 is a duplicate
    actions = receiver.receive("fast", Chunk(0, world.piece(0)))
    assert sends(actions, "slow") == [CancelChunks((0,)), Want((2,))]  # slow's freed slot: 2 twice too
    assert sends(actions, "fast") == [Want((1,))]
    assert receiver.in_flight("slow") == {1, 2} and receiver.in_flight("fast") == {1, 2}
    assert receiver.receive("slow", Chunk(0, world.piece(0))) == []  # crossed the cancel: dropped
    actions = receiver.receive("slow", Chunk(1, world.piece(1)))
    assert actions[0] == ChunkStored("slow", 1, CHUNK)
    assert sends(actions) == [CancelChunks((1,))] and sends(actions, "fast") == [CancelChunks((1,))]
    actions = receiver.receive("fast", Chunk(2, world.piece(2)))
    assert sends(actions, "slow") == [CancelChunks((2,)), Have(Bitfield.full(3).to_bytes())]
    assert sends(actions, "fast") == [Have(Bitfield.full(3).to_bytes())]
    assert actions[-1] == TransferComplete()
    assert (
        receiver.waiting_for("slow") is Awaiting.NOTHING and receiver.waiting_for("fast") is Awaiting.NOTHING
    )
    assert receiver.receive("fast", Chunk(1, world.piece(1))) == []  # the cancelled duplicates
    assert receiver.receive("slow", Chunk(2, world.piece(2))) == []
    assert receiver.bytes_cancelled == 3 * CHUNK  # what the duplicates cost: counted for the report
    with pytest.raises(ServiceDistributionError):
        receiver.receive("slow", Chunk(2, world.piece(2)))  # but only once


# -- the end --------------------------------------------------------------------------------


def test_conclude_and_finish_rules(world: World) -> None:
    receiver = world.receiver()
    world.started(receiver)
    with pytest.raises(ServiceDistributionError) as info:
        receiver.finish()
    assert info.value.code == "transfer_incomplete"
    with pytest.raises(ServiceDistributionError):
        receiver.conclude({"success": True})
    error = ServiceDistributionError("no sources left", code="transfer_failed")
    assert sends(receiver.conclude(error)) == [Result.failure(error)]
    assert receiver.state is ReceiverState.CLOSED and receiver.sources == frozenset()
    with pytest.raises(ProtocolError):
        receiver.receive("new", Offer(world.manifest))
    assert receiver.source_closed(S) == [] and receiver.waiting_for(S) is Awaiting.NOTHING
    with pytest.raises(ValueError, match="window"):
        TransferReceiver(receiver.partial, window=0)
    receiver.partial.close()
    with pytest.raises(ValueError, match="closed"):
        TransferReceiver(receiver.partial)


def test_a_disk_failure_fails_the_receiver_not_the_source(world: World) -> None:
    receiver = world.receiver()
    world.started(receiver)
    partial: PartialTransfer = receiver.partial
    partial.data_path.unlink()
    os.close(partial._data_fd)
    partial._data_fd = os.open(partial.directory / "ledger", os.O_RDONLY)  # type: ignore[operator]
    with pytest.raises(ServiceDistributionError) as info:
        receiver.receive(S, Chunk(0, world.piece(0)))
    assert info.value.code == "storage_failed" and isinstance(info.value.__cause__, OSError)
    assert receiver.state is ReceiverState.FAILED


def test_the_package_imports_no_network_or_async_library() -> None:
    root = Path(transfer_package.__file__).parent
    for source in root.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] not in {"trio", "libp2p", "anyio", "asyncio", "multiaddr"}, source
        assert len(source.read_text().splitlines()) <= 420, source


def test_manifest_equality_is_what_sources_are_checked_by(world: World) -> None:
    rebuilt = TransferManifest.from_wire(world.manifest.to_wire())
    assert rebuilt == world.manifest and rebuilt is not world.manifest
