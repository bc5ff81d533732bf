"""Fuzzing: whatever arrives, the only outcomes are valid progress or a typed refusal.

Refusals are ``ProtocolError`` or ``ServiceDistributionError``; never another exception, never an
unverified byte on disk, never a state machine that breaks its own bounds.
"""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from p2p_orchestrator.errors import PermissionDenied, ProtocolError, ServiceDistributionError
from p2p_orchestrator.transfer import (
    MAX_IN_FLIGHT,
    Abort,
    Bitfield,
    CancelChunks,
    Chunk,
    ChunkRejected,
    ChunkStored,
    Done,
    Fetch,
    Have,
    Offer,
    PartialStore,
    ReceiverState,
    Result,
    Send,
    SenderState,
    SourceEnded,
    TransferChannel,
    TransferComplete,
    TransferManifest,
    TransferMessage,
    TransferReceiver,
    TransferSender,
    Want,
    encode_message,
    message_from_wire,
)
from p2p_orchestrator.wire import NEED_DATA, encode_payload
from tests.transfer.support import CHUNK, archive, reader

FUZZ = settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
REFUSALS = (ProtocolError, ServiceDistributionError)
ACTIONS = (Send, ChunkStored, ChunkRejected, SourceEnded, TransferComplete)
COUNT = 4  # chunks of the fuzzed archive
SIZE = 3 * CHUNK + 100


class Fixture:
    """One archive shared by every example (building it per example would be slow)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path, self.data, self.manifest = archive(root, SIZE)
        self.other = archive(root, SIZE, seed=7)[2]
        self.examples = 0

    def piece(self, index: int) -> bytes:
        return self.data[index * CHUNK : (index + 1) * CHUNK]

    def fresh_store(self) -> PartialStore:
        self.examples += 1
        return PartialStore(self.root / f"home-{self.examples}", fsync=False)


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Fixture:
    return Fixture(tmp_path_factory.mktemp("fuzz"))


def check_disk(partial: Any, fx: Fixture) -> None:
    """Every chunk the partial calls verified is the right bytes on disk."""
    for index in partial.have():
        assert hashlib.sha256(partial.read_chunk(index)).digest() == fx.manifest.chunk_hashes[index]


# -- decoders -------------------------------------------------------------------------------

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64 - 1)
    | st.binary(max_size=40)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=20,
)
types = st.sampled_from(["fetch", "offer", "have", "want", "cancel", "chunk", "done", "abort", "result", "x"])
fields = st.sampled_from(
    [
        "manifest",
        "purpose",
        "options",
        "peers",
        "bits",
        "indices",
        "index",
        "data",
        "error",
        "ok",
        "result",
        "archive_hash",
        "service",
        "code",
    ]
)


@FUZZ
@given(kind=types, body=st.dictionaries(fields, values, max_size=5))
def test_message_from_wire_never_crashes(kind: str, body: dict[str, Any]) -> None:
    try:
        message = message_from_wire({"t": kind, **body})
    except REFUSALS:
        return
    assert message_from_wire(message.to_wire()) == message


@FUZZ
@given(data=st.binary(max_size=400), cuts=st.lists(st.integers(0, 400), max_size=5))
def test_channel_never_crashes_on_random_bytes(data: bytes, cuts: list[int]) -> None:
    channel = TransferChannel(max_frame_bytes=1024)
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    try:
        for a, b in itertools.pairwise(points):
            channel.receive_data(data[a:b])
            while channel.next_message() is not NEED_DATA:
                pass
            assert channel.buffered_bytes <= 4 + 1024 + (b - a)
    except REFUSALS:
        return


def valid_stream(fx: Fixture) -> bytes:
    messages: list[TransferMessage] = [Offer(fx.manifest), Have(Bitfield.full(COUNT).to_bytes())]
    messages += [Chunk(i, fx.piece(i)) for i in range(COUNT)]
    return b"".join(encode_message(m) for m in messages)


@FUZZ
@given(
    edits=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=6),
    truncate=st.none() | st.floats(0, 1),
)
def test_receiver_on_mutated_frames(
    fx: Fixture, edits: list[tuple[float, int]], truncate: float | None
) -> None:
    """A valid transfer's bytes with some bytes changed (in headers, CBOR, hashes, chunk data)."""
    stream = bytearray(valid_stream(fx))
    # Mutations mostly hit the first 2 KiB (frame headers, the offer) and sometimes chunk data.
    for where, value in edits:
        position = int(where * (2048 if value % 2 else len(stream) - 1)) % len(stream)
        stream[position] = value
    if truncate is not None:
        del stream[int(truncate * len(stream)) :]
    partial = fx.fresh_store().open(fx.manifest)
    receiver = TransferReceiver(partial, window=MAX_IN_FLIGHT)
    channel = TransferChannel()
    try:
        for start in range(0, len(stream), 65536):
            channel.receive_data(bytes(stream[start : start + 65536]))
            while (message := channel.next_message()) is not NEED_DATA:
                receiver.receive("peer", message)  # type: ignore[arg-type]
    except REFUSALS:
        pass
    check_disk(partial, fx)
    partial.close()


# -- state machines on random message sequences -------------------------------------------


def have_messages() -> st.SearchStrategy[Have]:
    """Well-formed haves of the 4-chunk archive, often holding everything."""
    return st.integers(0, 15).map(lambda n: Have(bytes([n << 4]))) | st.just(Have(b"\xf0"))


def sender_messages(fx: Fixture) -> st.SearchStrategy[TransferMessage]:
    index = st.integers(0, COUNT + 1)
    right_chunk = st.integers(0, COUNT - 1).map(lambda i: Chunk(i, fx.piece(i)))
    right_chunk |= st.integers(0, 1).map(lambda i: Chunk(i, fx.piece(i)))
    wrong_chunk = st.tuples(index, st.binary(min_size=1, max_size=64)).map(lambda t: Chunk(*t))
    shifted_chunk = st.integers(0, COUNT - 1).map(lambda i: Chunk(i, fx.piece((i + 1) % COUNT)))
    bits = have_messages()
    return st.one_of(
        st.just(Offer(fx.manifest)),
        st.just(Offer(fx.other)),
        bits,
        st.binary(min_size=1, max_size=2).map(Have),
        right_chunk,
        right_chunk,
        right_chunk,
        wrong_chunk,
        shifted_chunk,
        st.just(Done()),
        st.just(Abort(PermissionDenied("no"))),
        st.just(Want((0,))),
        st.just(Result.success({})),
    )


@FUZZ
@given(data=st.data())
def test_receiver_on_random_messages_from_several_sources(fx: Fixture, data: st.DataObject) -> None:
    """Honest sources answering the receiver's wants, interleaved with lies, noise and departures."""
    partial = fx.fresh_store().open(fx.manifest)
    window = data.draw(st.integers(1, 4))
    receiver = TransferReceiver(
        partial, window=window, max_corrupt=data.draw(st.integers(0, 2)), endgame=data.draw(st.booleans())
    )
    asked: dict[str, list[int]] = {name: [] for name in "abc"}

    def apply(source: str, message: TransferMessage | None) -> None:
        try:
            actions = receiver.source_closed(source) if message is None else receiver.receive(source, message)
        except REFUSALS:
            assert source not in receiver.sources or receiver.state is not ReceiverState.RECEIVING
            asked[source] = []
            return
        if message is None:
            asked[source] = []
        for action in actions:
            assert isinstance(action, ACTIONS)
            if isinstance(action, Send) and isinstance(action.message, Want):
                asked[str(action.source)] += action.message.indices

    for name in sorted(data.draw(st.sets(st.sampled_from("abc"), min_size=1))):
        apply(name, Offer(fx.manifest))
        apply(name, data.draw(have_messages()))
    steps = st.tuples(st.sampled_from(["honest"] * 8 + ["lie", "close"]), st.sampled_from("abc"))
    for kind, source in data.draw(st.lists(steps, min_size=4, max_size=40)):
        if kind == "honest" and asked[source]:
            index = asked[source].pop(data.draw(st.integers(0, len(asked[source]) - 1)))
            apply(source, Chunk(index, fx.piece(index)))
        elif kind == "lie":
            apply(source, data.draw(sender_messages(fx)))
        elif kind == "close":
            apply(source, None)
        for name in receiver.sources:
            assert len(receiver.in_flight(name)) <= window
            assert not receiver.in_flight(name) & set(partial.have())  # never asks for what it has
    check_disk(partial, fx)
    event(f"verified chunks: {partial.have().count}")
    if receiver.complete:
        assert receiver.finish().read_bytes() == fx.data
    partial.close()


def receiver_messages() -> st.SearchStrategy[TransferMessage]:
    indices = st.lists(st.integers(0, COUNT + 1), min_size=1, max_size=6, unique=True).map(tuple)
    return st.one_of(
        st.integers(0, 15).map(lambda n: Have(bytes([n << 4]))),
        st.binary(min_size=1, max_size=2).map(Have),
        indices.map(Want),
        indices.map(Want),
        indices.map(CancelChunks),
        st.just(Result.success({"ok": True})),
        st.just(Done()),
        st.just(Fetch(service="svc")),
    )


@FUZZ
@given(data=st.data())
def test_sender_on_random_messages(fx: Fixture, data: st.DataObject) -> None:
    held = Bitfield.from_indices(COUNT, data.draw(st.sets(st.integers(0, COUNT - 1))))
    sender = TransferSender(fx.manifest, reader(fx.path, fx.manifest), have=held, max_in_flight=4)
    sender.start()
    for message in data.draw(st.lists(receiver_messages() | st.none(), max_size=25)):
        if message is None:
            chunk = sender.next_chunk()
            if chunk is not None:
                assert chunk.index in held and chunk.data == fx.piece(chunk.index)
            continue
        try:
            assert sender.receive(message) == []
        except REFUSALS:
            assert sender.state in (SenderState.FAILED, SenderState.CLOSED)
            break
        assert len(sender.pending) <= 4 and all(i in held for i in sender.pending)


def test_offer_frames_of_every_size_limit(fx: Fixture) -> None:
    """An offer is refused at the codec when its manifest is over the receiver's limit."""
    channel = TransferChannel(max_total_bytes=SIZE - 1)
    channel.receive_data(encode_message(Offer(fx.manifest)))
    with pytest.raises(ServiceDistributionError) as info:
        channel.next_message()
    assert info.value.code == "transfer_too_large"
    assert isinstance(fx.manifest, TransferManifest)
    assert encode_payload(Offer(fx.manifest).to_wire())
