"""The receiver over a store in memory: the state machine needs no disk, only a ChunkStore.

The archive, the sender's reads and the receiver's store are all bytes in memory (and while the
whole transfers run, every way of opening a file fails); the messages still go through the real
codec (``Link``).  A corrupt chunk is refused and asked again without reaching the store, and a store
that fails fails the receiver (``storage_failed``), not the source.
"""

from __future__ import annotations

import builtins
import hashlib
import io
import os
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from p2p_orchestrator.errors import OrchestratorError, ProtocolError, ServiceDistributionError
from p2p_orchestrator.transfer import (
    Bitfield,
    Chunk,
    ChunkRejected,
    ChunkStore,
    ChunkStored,
    Have,
    Offer,
    ReceiverState,
    Result,
    SenderState,
    TransferComplete,
    TransferManifest,
    TransferReceiver,
    TransferSender,
    Want,
    compute_root,
)
from tests.transfer.support import CHUNK, Link, lying_manifest, sends

S = "origin"


class MemoryChunks:
    """A :class:`ChunkStore` in a dict.  ``fail_writes``: every write fails as a full disk would."""

    def __init__(self, manifest: TransferManifest, held: dict[int, bytes] | None = None) -> None:
        self.manifest = manifest
        self.closed = False
        self.is_finished = False
        self.chunks: dict[int, bytes] = dict(held or {})
        self.writes: list[int] = []
        self.fail_writes = False

    def have(self) -> Bitfield:
        return Bitfield.from_indices(self.manifest.chunk_count, self.chunks)

    def write_verified_chunk(self, index: int, data: bytes) -> None:
        if self.fail_writes:
            raise ServiceDistributionError(f"no room for chunk {index}", code="storage_failed")
        self.writes.append(index)
        self.chunks[index] = data

    def finish(self) -> Path:
        if not self.is_finished:
            data = b"".join(self.chunks[i] for i in range(self.manifest.chunk_count))
            if hashlib.sha256(data).hexdigest() != self.manifest.archive_hash:
                raise ServiceDistributionError("not the archive", code="archive_hash_mismatch")
            self.is_finished = True
        return Path("memory") / self.manifest.archive_hash  # a name only: nothing is written

    def archive(self) -> bytes:
        return b"".join(self.chunks[i] for i in sorted(self.chunks))


def manifest_of(data: bytes, chunk: int = CHUNK) -> TransferManifest:
    """The true manifest of ``data`` (``build_manifest`` reads a file; this does not)."""
    hashes = tuple(hashlib.sha256(data[i : i + chunk]).digest() for i in range(0, len(data), chunk))
    archive_hash = hashlib.sha256(data).hexdigest()
    return TransferManifest(
        archive_hash, len(data), chunk, hashes, compute_root(archive_hash, len(data), chunk, b"".join(hashes))
    )


def reader_of(data: bytes, manifest: TransferManifest) -> Callable[[int], bytes]:
    """``read_chunk`` for a sender serving ``data`` from memory."""

    def read_chunk(index: int) -> bytes:
        start = manifest.chunk_offset(index)
        return data[start : start + manifest.chunk_length(index)]

    return read_chunk


@contextmanager
def no_files(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Opening any file fails inside the block."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"a file was opened: {args[:1]}")

    with monkeypatch.context() as patch:
        for module, name in ((builtins, "open"), (io, "open"), (os, "open")):
            patch.setattr(module, name, refuse)
        yield


@pytest.fixture
def data() -> bytes:
    return random.Random(7).randbytes(5 * CHUNK + 1234)


def test_a_memory_store_is_a_chunk_store(data: bytes) -> None:
    store: ChunkStore = MemoryChunks(manifest_of(data))  # what a type checker holds it to
    receiver = TransferReceiver(store)
    assert receiver.state is ReceiverState.RECEIVING and receiver.partial is store


def test_a_whole_transfer_runs_in_memory(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = manifest_of(data)
    chunks = MemoryChunks(manifest)
    sender = TransferSender(manifest, reader_of(data, manifest))
    receiver = TransferReceiver(chunks, window=2)
    installed: list[Path] = []

    def install(path: Path) -> dict[str, Any]:
        installed.append(path)
        return {"installed": True}

    with no_files(monkeypatch):
        link = Link(sender, receiver, install=install).run()
    assert link.error is None
    assert chunks.archive() == data and chunks.is_finished
    assert chunks.writes == list(range(manifest.chunk_count))  # each chunk written once
    assert installed == [Path("memory") / manifest.archive_hash]
    assert receiver.state is ReceiverState.CLOSED and receiver.verified_bytes == len(data)
    assert sender.state is SenderState.CLOSED and sender.outcome == Result.success({"installed": True})
    assert sum(isinstance(a, TransferComplete) for a in link.actions) == 1


def test_a_corrupt_chunk_is_asked_again_and_never_stored(
    data: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = manifest_of(data)
    read = reader_of(data, manifest)
    corrupted: list[int] = []

    def flaky_read(index: int) -> bytes:  # chunk 2 is damaged on its first way out
        if index == 2 and not corrupted:
            corrupted.append(index)
            return bytes(manifest.chunk_length(index))
        return read(index)

    chunks = MemoryChunks(manifest)
    receiver = TransferReceiver(chunks, window=1)
    with no_files(monkeypatch):
        link = Link(TransferSender(manifest, flaky_read), receiver).run()
    [rejected] = [a for a in link.actions if isinstance(a, ChunkRejected)]
    assert rejected.index == 2 and rejected.error.code == "chunk_hash_mismatch"
    assert link.chunks.count(2) == 2  # asked again, and sent again
    assert chunks.writes == list(range(manifest.chunk_count)) and chunks.archive() == data
    assert link.error is None and receiver.state is ReceiverState.CLOSED


def test_by_hand_a_corrupt_chunk_does_not_reach_the_store(data: bytes) -> None:
    manifest = manifest_of(data)
    chunks = MemoryChunks(manifest)
    receiver = TransferReceiver(chunks, window=1)
    receiver.receive(S, Offer(manifest))
    assert sends(receiver.receive(S, Have(Bitfield.full(manifest.chunk_count).to_bytes()))) == [Want((0,))]
    actions = receiver.receive(S, Chunk(0, data[CHUNK : 2 * CHUNK]))  # chunk 1's bytes as chunk 0
    assert isinstance(actions[0], ChunkRejected) and sends(actions) == [Want((0,))]
    assert chunks.writes == [] and receiver.have().count == 0 and receiver.verified_bytes == 0
    actions = receiver.receive(S, Chunk(0, data[:CHUNK]))
    assert actions[0] == ChunkStored(S, 0, CHUNK) and sends(actions) == [Want((1,))]
    assert chunks.chunks == {0: data[:CHUNK]}
    assert receiver.have() == Bitfield.from_indices(manifest.chunk_count, [0])


def test_a_failing_store_fails_the_receiver_not_the_source(data: bytes) -> None:
    manifest = manifest_of(data)
    chunks = MemoryChunks(manifest)
    receiver = TransferReceiver(chunks, window=2)
    receiver.receive(S, Offer(manifest))
    receiver.receive(S, Have(Bitfield.full(manifest.chunk_count).to_bytes()))
    chunks.fail_writes = True
    with pytest.raises(ServiceDistributionError) as info:
        receiver.receive(S, Chunk(0, data[:CHUNK]))
    assert info.value.code == "storage_failed"
    assert receiver.state is ReceiverState.FAILED
    assert receiver.sources == {S}  # not dropped: it did nothing wrong
    assert receiver.have().count == 0 and receiver.bytes_from == {S: 0}
    with pytest.raises(ProtocolError) as later:
        receiver.receive(S, Chunk(1, data[CHUNK : 2 * CHUNK]))
    assert later.value.code == "unexpected_message"
    assert sends(receiver.conclude(info.value)) == [Result.failure(info.value)]  # the source hears why
    assert receiver.state is ReceiverState.CLOSED


def test_a_store_that_holds_part_is_resumed_and_one_that_is_finished_needs_nothing(data: bytes) -> None:
    manifest = manifest_of(data)
    held = {i: reader_of(data, manifest)(i) for i in (0, 2, 4)}
    chunks = MemoryChunks(manifest, held)
    sender = TransferSender(manifest, reader_of(data, manifest))
    link = Link(sender, TransferReceiver(chunks)).run()
    assert sorted(link.chunks) == [1, 3, 5] and chunks.archive() == data
    again = TransferReceiver(chunks)  # finished now: nothing to ask, the path at once
    assert again.state is ReceiverState.FINISHED and again.finish() == Path("memory") / manifest.archive_hash


def test_a_manifest_that_lies_about_the_archive_fails_the_receiver(data: bytes) -> None:
    liar = lying_manifest(data, CHUNK, "ab" * 32)  # every chunk right, the whole archive not
    receiver = TransferReceiver(MemoryChunks(liar))
    with pytest.raises(OrchestratorError) as info:
        Link(TransferSender(liar, reader_of(data, liar)), receiver).run()
    assert info.value.code == "archive_hash_mismatch" and receiver.state is ReceiverState.FAILED


def test_a_closed_store_is_refused(data: bytes) -> None:
    chunks = MemoryChunks(manifest_of(data))
    chunks.closed = True
    with pytest.raises(ValueError, match="closed"):
        TransferReceiver(chunks)
